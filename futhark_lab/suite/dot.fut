-- | Dot product.  Memory-bound: reads 2n.
entry dot_f32 (xs: []f32) (ys: []f32): f32 = f32.sum (map2 (*) xs ys)
entry dot_f64 (xs: []f64) (ys: []f64): f64 = f64.sum (map2 (*) xs ys)
