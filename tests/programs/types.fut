-- The shared test program: every primitive, ranks 1-3, tuples, records, bool, f16, u8, a unique parameter, and
-- entry points that fail at run time.  Each backend must give NumPy-identical answers.

-- | Add two 32-bit integers.
entry add_i32 (a: i32) (b: i32): i32 = a + b
entry widen (a: i8) (b: i16) (c: u16) (d: u32) (e: u64) (f: f32) (g: i64): f64 =
  f64.i8 a + f64.i16 b + f64.u16 c + f64.u32 d + f64.u64 e + f64.f32 f + f64.i64 g
entry scale_f32 (x: f32) (xs: []f32): []f32 = map (* x) xs
-- | Sum of squares, the seed example.
entry sum_squares (xs: []f64): f64 = f64.sum (map (\x -> x * x) xs)
entry transpose_i64 (m: [][]i64): [][]i64 = transpose m
entry double3 (a: [][][]f32): [][][]f32 = map (map (map (* 2f32))) a
entry min_max (xs: []i32): (i32, i32) = (i32.minimum xs, i32.maximum xs)
entry partition_signs (xs: []f64): ([]f64, []f64) = partition (>= 0) xs
entry negate_all (bs: []bool): []bool = map (\b -> !b) bs
entry any_true (bs: []bool): bool = reduce (||) false bs
entry double_f16 (xs: []f16): []f16 = map (* 2f16) xs
entry half_scalar (x: f16): f16 = x / 2f16
entry u8_sum (xs: []u8): u32 = u32.sum (map u32.u8 xs)
entry u8_invert (xs: []u8): []u8 = map (\x -> 255 - x) xs
entry u64_max (xs: []u64): u64 = reduce u64.max 0 xs
entry i16_neg (xs: []i16): []i16 = map i16.neg xs
-- | Consumes its argument: increments element 0 in place.
entry bump_first (xs: *[]i32): []i32 = xs with [0] = xs[0] + 1
entry iota_f64 (n: i64): []f64 = map f64.i64 (iota n)

type stats = {count: i64, mean: f64}
entry mk_stats (xs: []f64): stats = {count = length xs, mean = f64.sum xs / f64.i64 (length xs)}
entry stats_mean (s: stats): f64 = s.mean

-- Run-time failures.
entry get (xs: []i64) (i: i64): i64 = xs[i]
entry checked (x: i32): i32 = assert (x > 0) x
entry idiv (a: i32) (b: i32): i32 = a / b
