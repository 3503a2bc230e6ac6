-- | Sum of squares: the seeds' benchmark.  Memory-bound: reads n elements once.
entry sum_squares_f64 (xs: []f64): f64 = f64.sum (map (\x -> x * x) xs)
entry sum_squares_f32 (xs: []f32): f32 = f32.sum (map (\x -> x * x) xs)
