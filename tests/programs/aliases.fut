-- Aliasing and consumption (tests/test_aliases.py, tests/hostile.py): nonunique outputs alias their inputs.

entry id1 (xs: []f64) : []f64 = xs
entry fresh (xs: []f64) : *[]f64 = copy xs
entry inc (xs: *[]f64) : []f64 = xs with [0] = xs[0] + 1
entry inc_sum (xs: *[]f64) (ys: []f64) : f64 = f64.sum (xs with [0] = xs[0] + 1) + f64.sum ys
entry both (xs: []f64) (ys: []f64) : []f64 = if length xs > 0 then xs else ys
entry two (xs: []f64) : ([]f64, *[]f64) = (xs, copy xs)

type~ rec = {a: []f64, b: i64}
entry mk (xs: []f64) : rec = {a = xs, b = length xs}
entry get_a (r: rec) : []f64 = r.a
entry eat (r: *rec) : []f64 = r.a with [0] = r.a[0] + 1
