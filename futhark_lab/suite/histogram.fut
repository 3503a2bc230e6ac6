-- | Histogram of values in [0, 256) into 256 bins (reduce_by_index).
entry histogram_i32 (xs: []i32): []i32 =
  hist (+) 0 256 (map i64.i32 xs) (map (const 1) xs)
