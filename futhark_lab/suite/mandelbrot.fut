-- | Escape counts of an n×n grid over [-2, 1] × [-1.5, 1.5], at most `limit` iterations.  Compute-bound.
def escape (limit: i32) (cx: f32) (cy: f32): i32 =
  let (_, _, k) =
    loop (x, y, k) = (0f32, 0f32, 0i32) while k < limit && x * x + y * y <= 4f32 do
      (x * x - y * y + cx, 2f32 * x * y + cy, k + 1)
  in k

entry mandelbrot (n: i64) (limit: i32): [n][n]i32 =
  tabulate_2d n n (\i j ->
    escape limit (-2f32 + 3f32 * f32.i64 j / f32.i64 n) (-1.5f32 + 3f32 * f32.i64 i / f32.i64 n))
