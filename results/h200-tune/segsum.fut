-- futhark-benchmarks' micro/reduce-segmented.fut sum_i32 (imported), on datasets of 10000000 elements in all,
-- from one segment to 10000000 segments.
import "reduce-segmented"

-- ==
-- entry: segsum
-- random input { 1i32 10000000i32 [10000000]i32 }
-- random input { 10i32 1000000i32 [10000000]i32 }
-- random input { 100i32 100000i32 [10000000]i32 }
-- random input { 1000i32 10000i32 [10000000]i32 }
-- random input { 10000i32 1000i32 [10000000]i32 }
-- random input { 100000i32 100i32 [10000000]i32 }
-- random input { 1000000i32 10i32 [10000000]i32 }
-- random input { 10000000i32 1i32 [10000000]i32 }

entry segsum (n: i32) (m: i32) (xs: []i32) : []i32 = sum_i32 n m xs
