-- | a*x + y.  Memory-bound: reads 2n, writes n.
entry saxpy_f32 (a: f32) (xs: []f32) (ys: []f32): []f32 = map2 (\x y -> a * x + y) xs ys
entry saxpy_f64 (a: f64) (xs: []f64) (ys: []f64): []f64 = map2 (\x y -> a * x + y) xs ys
