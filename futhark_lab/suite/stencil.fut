-- | One Jacobi step of the 2-D 5-point stencil on an n×n grid, with clamped borders.
def step [n][m] 't (add: t -> t -> t) (mul: t -> t -> t) (c: t) (g: [n][m]t): [n][m]t =
  tabulate_2d n m (\i j ->
    let at ii jj = g[i64.max 0 (i64.min (n - 1) ii), i64.max 0 (i64.min (m - 1) jj)]
    in mul c (add (add (at i j) (at (i - 1) j)) (add (add (at (i + 1) j) (at i (j - 1))) (at i (j + 1)))))

entry stencil_f32 (g: [][]f32): [][]f32 = step (+) (*) 0.2f32 g
entry stencil_f64 (g: [][]f64): [][]f64 = step (+) (*) 0.2f64 g
