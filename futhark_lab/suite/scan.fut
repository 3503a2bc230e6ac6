-- | Inclusive prefix sum.  Memory-bound: reads n, writes n.
entry scan_f32 (xs: []f32): []f32 = scan (+) 0 xs
entry scan_f64 (xs: []f64): []f64 = scan (+) 0 xs
