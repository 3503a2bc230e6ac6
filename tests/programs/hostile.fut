-- Entry points for the hostile-input suite (tests/hostile.py): sizes, division, uniqueness, conversions, opaques.

entry rep (n: i64) : []f64 = replicate n 1.0
entry rep2 (n: i64) (m: i64) : [][]f64 = replicate n (replicate m 1.0)
entry rec_rep (n: i64) : ([]f64, i64) = (replicate n 2.0, n)

entry div64 (a: i64) (b: i64) : i64 = a / b
entry mod64 (a: i64) (b: i64) : i64 = a % b
entry quot64 (a: i64) (b: i64) : i64 = a // b
entry rem64 (a: i64) (b: i64) : i64 = a %% b
entry div32 (a: i32) (b: i32) : i32 = a / b
entry quot32 (a: i32) (b: i32) : i32 = a // b
entry div8 (a: i8) (b: i8) : i8 = a / b
entry map_div (xs: []i64) (b: i64) : []i64 = map (\x -> x / b) xs
entry map_mod (xs: []i32) (b: i32) : []i32 = map (\x -> x % b) xs

entry idx (xs: []i64) (i: i64) : i64 = xs[i]
entry unfl (n: i64) (m: i64) (xs: []i32) : [n][m]i32 = unflatten (xs :> [n*m]i32)
entry iota_sum (n: i64) : i64 = i64.sum (iota n)

entry inc (xs: *[]i64) : []i64 = map (+1) xs
entry inc_into (xs: *[]i64) (ys: []i64) : []i64 = map2 (+) xs ys
entry bump (xs: *[]i64) : *[]i64 = xs with [0] = xs[0] + 100

entry sum_f64 (xs: []f64) : f64 = f64.sum xs
entry id_f64 (x: f64) : f64 = x
entry id_f32 (x: f32) : f32 = x
entry id_f16 (x: f16) : f16 = x
entry id_i64 (x: i64) : i64 = x

type~ rec = {a: []f64, b: i64}
entry mk (n: i64) : rec = {a = replicate n 2.0, b = n}
entry use (r: rec) : f64 = f64.sum r.a + f64.i64 r.b

entry spin (n: i64) : i64 = loop acc = 0 for i < n do (acc * 31 + i) % 1000003

entry id_i64s (xs: []i64) : []i64 = xs
entry fresh_i64s (xs: []i64) : *[]i64 = copy xs
entry pair_i64s (xs: []i64) : ([]i64, *[]i64) = (xs, copy xs)
entry wrap_rec (xs: []f64) : rec = {a = xs, b = length xs}
entry eat_rec (r: *rec) : []f64 = r.a with [0] = r.a[0] + 100
