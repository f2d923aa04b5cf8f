//! The interpreter's values and operators: dense tensors of the element types the trainer's
//! graphs use, with ONNX's semantics (opsets 13 to 21): numpy broadcasting, integer ops that
//! wrap to their type, and every float16 result rounded to float16 (computed in f32 first, as
//! tract and onnxruntime do).

use half::f16;

use super::proto::TensorProto;

/// An operator's failure, in words; the program adds the node's name.
pub(crate) type OpResult<T> = Result<T, String>;

/// Element types (`TensorProto.DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DType {
    /// FLOAT (1).
    F32,
    /// FLOAT16 (10): held as f32 values that are all float16-exact.
    F16,
    /// UINT8 (2).
    U8,
    /// INT8 (3).
    I8,
    /// INT32 (6).
    I32,
    /// INT64 (7).
    I64,
}

impl DType {
    /// The type of an ONNX `DataType` code.
    pub(crate) fn from_code(code: i64) -> OpResult<Self> {
        Ok(match code {
            1 => Self::F32,
            2 => Self::U8,
            3 => Self::I8,
            6 => Self::I32,
            7 => Self::I64,
            10 => Self::F16,
            other => return Err(format!("element type {other} is not one the interpreter reads")),
        })
    }

    fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F16)
    }

    /// `v` as this float type stores it.
    fn round(self, v: f32) -> f32 {
        if self == Self::F16 { f16::from_f32(v).to_f32() } else { v }
    }

    /// `v` wrapped to this integer type, as a two's-complement machine would.
    fn wrap(self, v: i64) -> i64 {
        match self {
            Self::U8 => v as u8 as i64,
            Self::I8 => v as i8 as i64,
            Self::I32 => v as i32 as i64,
            _ => v,
        }
    }
}

/// The values: floats for the float types, i64 for the integer ones.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Data {
    /// F32 and F16 values.
    Float(Vec<f32>),
    /// Integer values, each within its type's range.
    Int(Vec<i64>),
}

/// A dense tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tensor {
    /// Its element type.
    pub(crate) dtype: DType,
    /// Its shape (`[]`: a scalar).
    pub(crate) shape: Vec<usize>,
    /// Its values.
    pub(crate) data: Data,
}

fn volume(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    /// A float32 tensor.
    pub(crate) fn f32(shape: Vec<usize>, values: Vec<f32>) -> Self {
        Self { dtype: DType::F32, shape, data: Data::Float(values) }
    }

    /// An int64 tensor.
    pub(crate) fn i64(shape: Vec<usize>, values: Vec<i64>) -> Self {
        Self { dtype: DType::I64, shape, data: Data::Int(values) }
    }

    /// The float values.
    pub(crate) fn floats(&self) -> OpResult<&[f32]> {
        match &self.data {
            Data::Float(v) => Ok(v),
            Data::Int(_) => Err(format!("expected a float tensor, got {:?}", self.dtype)),
        }
    }

    /// The integer values.
    pub(crate) fn ints(&self) -> OpResult<&[i64]> {
        match &self.data {
            Data::Int(v) => Ok(v),
            Data::Float(_) => Err(format!("expected an integer tensor, got {:?}", self.dtype)),
        }
    }

    fn len(&self) -> usize {
        match &self.data {
            Data::Float(v) => v.len(),
            Data::Int(v) => v.len(),
        }
    }

    fn with(&self, shape: Vec<usize>, data: Data) -> Self {
        Self { dtype: self.dtype, shape, data }
    }

    /// An initialiser's tensor: its values raw (little-endian) or in the typed field its type uses.
    pub(crate) fn from_proto(t: &TensorProto) -> OpResult<Self> {
        if t.data_location != 0 {
            return Err("its values are in an external file".into());
        }
        let dtype = DType::from_code(t.data_type.into())?;
        let shape = t
            .dims
            .iter()
            .map(|d| usize::try_from(*d).map_err(|_| format!("dimension {d} is negative")))
            .collect::<OpResult<Vec<_>>>()?;
        let n = shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d)).ok_or("its shape overflows")?;
        let raw = &t.raw_data;
        let data = if !raw.is_empty() {
            let width = match dtype {
                DType::F32 | DType::I32 => 4,
                DType::F16 => 2,
                DType::U8 | DType::I8 => 1,
                DType::I64 => 8,
            };
            if raw.len() != n * width {
                return Err(format!("{} raw bytes for {n} values of {width} bytes", raw.len()));
            }
            match dtype {
                DType::F32 => {
                    Data::Float(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
                }
                DType::F16 => {
                    Data::Float(raw.chunks_exact(2).map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()).collect())
                }
                DType::U8 => Data::Int(raw.iter().map(|b| i64::from(*b)).collect()),
                DType::I8 => Data::Int(raw.iter().map(|b| i64::from(*b as i8)).collect()),
                DType::I32 => Data::Int(
                    raw.chunks_exact(4).map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect(),
                ),
                DType::I64 => Data::Int(
                    raw.chunks_exact(8)
                        .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                        .collect(),
                ),
            }
        } else {
            match dtype {
                DType::F32 => Data::Float(t.float_data.clone()),
                // float16 values travel as their bits in `int32_data`.
                DType::F16 => Data::Float(t.int32_data.iter().map(|b| f16::from_bits(*b as u16).to_f32()).collect()),
                DType::I64 => Data::Int(t.int64_data.clone()),
                _ => Data::Int(t.int32_data.iter().map(|v| dtype.wrap(i64::from(*v))).collect()),
            }
        };
        let tensor = Self { dtype, shape, data };
        if tensor.len() != n {
            return Err(format!("{} values for a shape of {n}", tensor.len()));
        }
        Ok(tensor)
    }
}

/// `axis` (negative: from the end) as an index into `rank` dimensions.
fn axis_of(axis: i64, rank: usize) -> OpResult<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    if (0..rank as i64).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {axis} is out of range for rank {rank}"))
    }
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The shape `a` and `b` broadcast to (numpy's rules).
fn broadcast_shape(a: &[usize], b: &[usize]) -> OpResult<Vec<usize>> {
    let n = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| if i < n - s.len() { 1 } else { s[i - (n - s.len())] };
    (0..n)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        })
        .collect()
}

/// Calls `f` with the offsets into `a` and `b` (each broadcast to `out`) of every element of
/// `out`, in order.
fn broadcast_each(out: &[usize], a: &[usize], b: &[usize], mut f: impl FnMut(usize, usize)) {
    let n = out.len();
    let aligned = |s: &[usize]| {
        let mut st = vec![0; n];
        let own = strides(s);
        for (i, d) in s.iter().enumerate() {
            st[n - s.len() + i] = if *d == 1 { 0 } else { own[i] };
        }
        st
    };
    let (sa, sb) = (aligned(a), aligned(b));
    let total = volume(out);
    let (mut idx, mut oa, mut ob) = (vec![0usize; n], 0usize, 0usize);
    for _ in 0..total {
        f(oa, ob);
        for d in (0..n).rev() {
            idx[d] += 1;
            oa += sa[d];
            ob += sb[d];
            if idx[d] < out[d] {
                break;
            }
            oa -= sa[d] * out[d];
            ob -= sb[d] * out[d];
            idx[d] = 0;
        }
    }
}

/// When `small` broadcast to `out` repeats each of its values over a run of consecutive
/// elements (its dimensions are `out`'s leading ones, then only 1s: a row scale, a scalar), the
/// length of that run.
fn run_length(small: &[usize], out: &[usize]) -> Option<usize> {
    let aligned: Vec<usize> = std::iter::repeat_n(1, out.len() - small.len()).chain(small.iter().copied()).collect();
    let kept = aligned.iter().zip(out).take_while(|(s, o)| s == o).count();
    aligned[kept..].iter().all(|d| *d == 1).then(|| volume(&out[kept..]))
}

/// `f` over `a` and `b` broadcast together, with fast paths for equal shapes and for one side
/// repeated in runs (a scalar, a per-row scale: an 8-bit table's dequantisation at load).
fn zip_broadcast<T: Copy, U>(
    a: &[T],
    ash: &[usize],
    b: &[T],
    bsh: &[usize],
    out: &[usize],
    f: impl Fn(T, T) -> U,
) -> Vec<U> {
    if ash == bsh {
        return a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect();
    }
    if ash == out
        && let Some(run) = run_length(bsh, out)
    {
        return a.iter().enumerate().map(|(i, x)| f(*x, b[i / run])).collect();
    }
    if bsh == out
        && let Some(run) = run_length(ash, out)
    {
        return b.iter().enumerate().map(|(i, y)| f(a[i / run], *y)).collect();
    }
    let mut r = Vec::with_capacity(volume(out));
    broadcast_each(out, ash, bsh, |i, j| r.push(f(a[i], b[j])));
    r
}

/// The element-wise operators of two inputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Binary {
    /// `Add`.
    Add,
    /// `Mul`.
    Mul,
    /// `Div` (integers: truncated).
    Div,
    /// `Mod`; `fmod`: the remainder takes the dividend's sign (else the divisor's).
    Mod {
        /// The `fmod` attribute.
        fmod: bool,
    },
}

/// `op(a, b)`, broadcast.
pub(crate) fn binary(op: Binary, a: &Tensor, b: &Tensor) -> OpResult<Tensor> {
    if a.dtype != b.dtype {
        return Err(format!("inputs of types {:?} and {:?}", a.dtype, b.dtype));
    }
    let shape = broadcast_shape(&a.shape, &b.shape)?;
    let t = a.dtype;
    let data = match (&a.data, &b.data) {
        (Data::Float(x), Data::Float(y)) => {
            if op == (Binary::Mod { fmod: false }) {
                return Err("Mod of floats needs fmod = 1".into());
            }
            Data::Float(zip_broadcast(x, &a.shape, y, &b.shape, &shape, |p, q| {
                t.round(match op {
                    Binary::Add => p + q,
                    Binary::Mul => p * q,
                    Binary::Div => p / q,
                    Binary::Mod { .. } => p % q,
                })
            }))
        }
        (Data::Int(x), Data::Int(y)) => {
            if matches!(op, Binary::Div | Binary::Mod { .. }) && y.contains(&0) {
                return Err(format!("integer {op:?} by zero"));
            }
            Data::Int(zip_broadcast(x, &a.shape, y, &b.shape, &shape, |p, q| {
                t.wrap(match op {
                    Binary::Add => p.wrapping_add(q),
                    Binary::Mul => p.wrapping_mul(q),
                    Binary::Div => p.wrapping_div(q),
                    Binary::Mod { fmod: true } => p.wrapping_rem(q),
                    Binary::Mod { fmod: false } => {
                        let r = p.wrapping_rem(q);
                        if r != 0 && (r < 0) != (q < 0) { r + q } else { r }
                    }
                })
            }))
        }
        _ => unreachable!("equal types hold the same kind of data"),
    };
    Ok(a.with(shape, data))
}

/// The element-wise float operators of one input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Unary {
    /// `Sqrt`.
    Sqrt,
    /// `Log` (natural).
    Log,
}

/// `op(a)`.
pub(crate) fn unary(op: Unary, a: &Tensor) -> OpResult<Tensor> {
    let t = a.dtype;
    let values = a.floats()?.iter().map(|v| {
        t.round(match op {
            Unary::Sqrt => v.sqrt(),
            Unary::Log => v.ln(),
        })
    });
    Ok(a.with(a.shape.clone(), Data::Float(values.collect())))
}

/// `Cast`: floats to floats rounded, floats to integers truncated towards zero, integers
/// wrapped to their new type.
pub(crate) fn cast(a: &Tensor, to: DType) -> Tensor {
    let data = match (&a.data, to.is_float()) {
        (Data::Float(v), true) => Data::Float(v.iter().map(|x| to.round(*x)).collect()),
        (Data::Float(v), false) => Data::Int(v.iter().map(|x| to.wrap(*x as i64)).collect()),
        // Integers up to 2048 are exact in float16 (an 8-bit table's steps): no rounding to do.
        (Data::Int(v), true) => Data::Float(
            v.iter().map(|x| if x.unsigned_abs() <= 2048 { *x as f32 } else { to.round(*x as f32) }).collect(),
        ),
        (Data::Int(v), false) => Data::Int(v.iter().map(|x| to.wrap(*x)).collect()),
    };
    Tensor { dtype: to, shape: a.shape.clone(), data }
}

/// Picks, for every element of a new tensor, the value at an offset of the old one.
fn pick(a: &Tensor, shape: Vec<usize>, offsets: impl Iterator<Item = usize>) -> Tensor {
    let data = match &a.data {
        Data::Float(v) => Data::Float(offsets.map(|o| v[o]).collect()),
        Data::Int(v) => Data::Int(offsets.map(|o| v[o]).collect()),
    };
    a.with(shape, data)
}

/// `Gather` along `axis`.
pub(crate) fn gather(data: &Tensor, indices: &Tensor, axis: i64) -> OpResult<Tensor> {
    let axis = axis_of(axis, data.shape.len())?;
    let n = data.shape[axis];
    let idx = indices
        .ints()?
        .iter()
        .map(|i| {
            let j = if *i < 0 { i + n as i64 } else { *i };
            if (0..n as i64).contains(&j) {
                Ok(j as usize)
            } else {
                Err(format!("index {i} is out of range for {n} rows"))
            }
        })
        .collect::<OpResult<Vec<_>>>()?;
    let outer = volume(&data.shape[..axis]);
    let inner = volume(&data.shape[axis + 1..]);
    let shape = [&data.shape[..axis], &indices.shape[..], &data.shape[axis + 1..]].concat();
    let offsets =
        (0..outer).flat_map(|o| idx.iter().flat_map(move |j| ((o * n + j) * inner)..((o * n + j) * inner + inner)));
    Ok(pick(data, shape, offsets))
}

/// `Concat` along `axis`.
pub(crate) fn concat(inputs: &[&Tensor], axis: i64) -> OpResult<Tensor> {
    let first = inputs.first().ok_or("no inputs")?;
    let rank = first.shape.len();
    let axis = axis_of(axis, rank)?;
    for t in inputs {
        let fits = t.dtype == first.dtype
            && t.shape.len() == rank
            && t.shape.iter().zip(&first.shape).enumerate().all(|(i, (a, b))| i == axis || a == b);
        if !fits {
            return Err(format!("cannot join {:?} {:?} to {:?} {:?}", t.dtype, t.shape, first.dtype, first.shape));
        }
    }
    let outer = volume(&first.shape[..axis]);
    let mut shape = first.shape.clone();
    shape[axis] = inputs.iter().map(|t| t.shape[axis]).sum();
    let chunk = |t: &Tensor| volume(&t.shape[axis..]);
    let data = match &first.data {
        Data::Float(_) => Data::Float(interleave(
            &inputs.iter().map(|t| Ok((t.floats()?, chunk(t)))).collect::<OpResult<Vec<_>>>()?,
            outer,
        )),
        Data::Int(_) => Data::Int(interleave(
            &inputs.iter().map(|t| Ok((t.ints()?, chunk(t)))).collect::<OpResult<Vec<_>>>()?,
            outer,
        )),
    };
    Ok(first.with(shape, data))
}

/// For each of `outer` indices, each part's chunk of that many values in turn: a `Concat`.
fn interleave<T: Copy>(parts: &[(&[T], usize)], outer: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(parts.iter().map(|(p, _)| p.len()).sum());
    for o in 0..outer {
        for (p, chunk) in parts {
            v.extend_from_slice(&p[o * chunk..][..*chunk]);
        }
    }
    v
}

/// `ReduceSum` over `axes` (all of them when there are none, unless `noop_with_empty_axes`),
/// summing in the input's order.
pub(crate) fn reduce_sum(a: &Tensor, axes: Option<&Tensor>, keepdims: bool, noop_empty: bool) -> OpResult<Tensor> {
    let rank = a.shape.len();
    let mut reduced = vec![false; rank];
    match axes.map(|t| t.ints()).transpose()? {
        Some(list) if !list.is_empty() => {
            for ax in list {
                reduced[axis_of(*ax, rank)?] = true;
            }
        }
        _ if noop_empty => return Ok(a.clone()),
        _ => reduced.iter_mut().for_each(|r| *r = true),
    }
    let kept: Vec<usize> = a.shape.iter().zip(&reduced).map(|(d, r)| if *r { 1 } else { *d }).collect();
    let out_strides = strides(&kept);
    let shape: Vec<usize> = if keepdims {
        kept.clone()
    } else {
        kept.iter().zip(&reduced).filter(|(_, r)| !**r).map(|(d, _)| *d).collect()
    };
    // Each input element's offset in the output: its index with the reduced axes at 0.
    let in_strides = strides(&a.shape);
    let target = |i: usize| -> usize {
        (0..rank).filter(|d| !reduced[*d]).map(|d| (i / in_strides[d] % a.shape[d]) * out_strides[d]).sum()
    };
    let data = match &a.data {
        Data::Float(v) => {
            let mut sums = vec![0f32; volume(&kept)];
            for (i, x) in v.iter().enumerate() {
                sums[target(i)] += x;
            }
            Data::Float(sums.into_iter().map(|s| a.dtype.round(s)).collect())
        }
        Data::Int(v) => {
            let mut sums = vec![0i64; volume(&kept)];
            for (i, x) in v.iter().enumerate() {
                let t = target(i);
                sums[t] = a.dtype.wrap(sums[t].wrapping_add(*x));
            }
            Data::Int(sums)
        }
    };
    Ok(a.with(shape, data))
}

/// `Softmax` along `axis` (opset 13's: that axis alone).
pub(crate) fn softmax(a: &Tensor, axis: i64) -> OpResult<Tensor> {
    let axis = axis_of(axis, a.shape.len())?;
    let v = a.floats()?;
    let (n, inner) = (a.shape[axis], volume(&a.shape[axis + 1..]));
    let mut out = v.to_vec();
    for o in 0..volume(&a.shape[..axis]) {
        for i in 0..inner {
            let at = |k: usize| (o * n + k) * inner + i;
            let max = (0..n).map(|k| v[at(k)]).fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for k in 0..n {
                out[at(k)] = (v[at(k)] - max).exp();
                sum += out[at(k)];
            }
            for k in 0..n {
                out[at(k)] = a.dtype.round(out[at(k)] / sum);
            }
        }
    }
    Ok(a.with(a.shape.clone(), Data::Float(out)))
}

/// `Slice` with `starts`, `ends` and optional `axes` and `steps`, clamped as ONNX says.
pub(crate) fn slice(
    a: &Tensor,
    starts: &Tensor,
    ends: &Tensor,
    axes: Option<&Tensor>,
    steps: Option<&Tensor>,
) -> OpResult<Tensor> {
    let rank = a.shape.len();
    let (starts, ends) = (starts.ints()?, ends.ints()?);
    let axes = axes.map(|t| t.ints()).transpose()?;
    let steps = steps.map(|t| t.ints()).transpose()?;
    if ends.len() != starts.len()
        || axes.is_some_and(|x| x.len() != starts.len())
        || steps.is_some_and(|x| x.len() != starts.len())
    {
        return Err("starts, ends, axes and steps differ in length".into());
    }
    let (mut first, mut step, mut shape) = (vec![0i64; rank], vec![1i64; rank], a.shape.clone());
    for k in 0..starts.len() {
        let ax = axis_of(axes.map_or(k as i64, |x| x[k]), rank)?;
        let d = a.shape[ax] as i64;
        let st = steps.map_or(1, |x| x[k]);
        let from = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
        let (s, e) = (from(starts[k]), from(ends[k]));
        let len = if st > 0 {
            let (s, e) = (s.clamp(0, d), e.clamp(0, d));
            first[ax] = s;
            if e > s { (e - s + st - 1) / st } else { 0 }
        } else if st < 0 {
            let (s, e) = (s.clamp(0, d - 1), e.clamp(-1, d - 1));
            first[ax] = s;
            if s > e { (s - e - st - 1) / -st } else { 0 }
        } else {
            return Err("a step of 0".into());
        };
        step[ax] = st;
        shape[ax] = len as usize;
    }
    let in_strides = strides(&a.shape);
    let out_strides = strides(&shape);
    let offsets = (0..volume(&shape)).map(|i| {
        (0..rank)
            .map(|d| {
                let k = (i / out_strides[d] % shape[d]) as i64;
                ((first[d] + k * step[d]) as usize) * in_strides[d]
            })
            .sum()
    });
    Ok(pick(a, shape.clone(), offsets))
}

/// `MatMul` of matrices (or a vector on either side), summing in order.
pub(crate) fn matmul(a: &Tensor, b: &Tensor) -> OpResult<Tensor> {
    if a.dtype != b.dtype || !a.dtype.is_float() {
        return Err(format!("MatMul of {:?} and {:?}", a.dtype, b.dtype));
    }
    let (x, y) = (a.floats()?, b.floats()?);
    let (n, k) = match a.shape[..] {
        [k] => (1, k),
        [n, k] => (n, k),
        _ => return Err(format!("MatMul of a rank {} tensor", a.shape.len())),
    };
    let (k2, m) = match b.shape[..] {
        [k] => (k, 1),
        [k, m] => (k, m),
        _ => return Err(format!("MatMul of a rank {} tensor", b.shape.len())),
    };
    if k != k2 {
        return Err(format!("MatMul of {:?} by {:?}", a.shape, b.shape));
    }
    let mut out = vec![0f32; n * m];
    for i in 0..n {
        for j in 0..m {
            let s = (0..k).fold(0f32, |s, l| s + x[i * k + l] * y[l * m + j]);
            out[i * m + j] = a.dtype.round(s);
        }
    }
    let shape = match (a.shape.len(), b.shape.len()) {
        (1, 1) => vec![],
        (1, _) => vec![m],
        (_, 1) => vec![n],
        _ => vec![n, m],
    };
    Ok(a.with(shape, Data::Float(out)))
}

/// `Reshape` to `shape` (0 keeps a dimension unless `allowzero`, -1 takes what is left).
pub(crate) fn reshape(a: &Tensor, shape: &Tensor, allowzero: bool) -> OpResult<Tensor> {
    let want = shape.ints()?;
    let mut dims = Vec::with_capacity(want.len());
    let mut infer = None;
    for (i, d) in want.iter().enumerate() {
        dims.push(match *d {
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            0 if !allowzero => *a.shape.get(i).ok_or("a 0 past the input's rank")?,
            d if d >= 0 => d as usize,
            d => return Err(format!("dimension {d}")),
        });
    }
    if let Some(i) = infer {
        let known = volume(&dims);
        if known == 0 || !a.len().is_multiple_of(known) {
            return Err(format!("cannot reshape {:?} to {want:?}", a.shape));
        }
        dims[i] = a.len() / known;
    }
    if volume(&dims) != a.len() {
        return Err(format!("cannot reshape {:?} to {want:?}", a.shape));
    }
    Ok(a.with(dims, a.data.clone()))
}

/// `Shape`, from `start` to `end` (clamped, negative from the end).
pub(crate) fn shape_of(a: &Tensor, start: i64, end: Option<i64>) -> Tensor {
    let r = a.shape.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let (s, e) = (clamp(start), clamp(end.unwrap_or(r)));
    let dims: Vec<i64> = a.shape[s..e.max(s)].iter().map(|d| *d as i64).collect();
    Tensor::i64(vec![dims.len()], dims)
}

/// `Expand` to `shape` (broadcast both ways).
pub(crate) fn expand(a: &Tensor, shape: &Tensor) -> OpResult<Tensor> {
    let want = shape
        .ints()?
        .iter()
        .map(|d| usize::try_from(*d).map_err(|_| format!("dimension {d}")))
        .collect::<OpResult<Vec<_>>>()?;
    let out = broadcast_shape(&a.shape, &want)?;
    let mut offsets = Vec::with_capacity(volume(&out));
    broadcast_each(&out, &a.shape, &want, |i, _| offsets.push(i));
    Ok(pick(a, out, offsets.into_iter()))
}

/// `Unsqueeze` (opset 13: the axes as an input).
pub(crate) fn unsqueeze(a: &Tensor, axes: &Tensor) -> OpResult<Tensor> {
    let rank = a.shape.len() + axes.len();
    let mut at = axes.ints()?.iter().map(|x| axis_of(*x, rank)).collect::<OpResult<Vec<_>>>()?;
    at.sort_unstable();
    if at.windows(2).any(|w| w[0] == w[1]) {
        return Err("an axis named twice".into());
    }
    let mut shape = a.shape.clone();
    for ax in at {
        shape.insert(ax, 1);
    }
    Ok(a.with(shape, a.data.clone()))
}

/// How `ScatterElements` combines an update with the value it lands on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Reduction {
    /// Replace it.
    None,
    /// Add to it.
    Add,
    /// Multiply it.
    Mul,
    /// Keep the larger.
    Max,
    /// Keep the smaller.
    Min,
}

/// `ScatterElements` along `axis`: each update goes to its index's place, in the updates' order.
pub(crate) fn scatter_elements(
    data: &Tensor,
    indices: &Tensor,
    updates: &Tensor,
    axis: i64,
    reduction: Reduction,
) -> OpResult<Tensor> {
    let rank = data.shape.len();
    let axis = axis_of(axis, rank)?;
    if indices.shape != updates.shape || indices.shape.len() != rank || updates.dtype != data.dtype {
        return Err(format!(
            "indices {:?} and updates {:?} {:?} for data {:?}",
            indices.shape, updates.dtype, updates.shape, data.shape
        ));
    }
    let n = data.shape[axis] as i64;
    let (ds, us) = (strides(&data.shape), strides(&updates.shape));
    let mut targets = Vec::with_capacity(updates.len());
    for (i, j) in indices.ints()?.iter().enumerate() {
        let j = if *j < 0 { j + n } else { *j };
        if !(0..n).contains(&j) {
            return Err(format!("index {j} is out of range for {n} rows"));
        }
        let mut off = 0;
        for d in 0..rank {
            let k = if d == axis { j as usize } else { i / us[d] % updates.shape[d] };
            if k >= data.shape[d] {
                return Err(format!("update {i} falls outside the data"));
            }
            off += k * ds[d];
        }
        targets.push(off);
    }
    let out = match (&data.data, &updates.data) {
        (Data::Float(v), Data::Float(u)) => {
            let mut v = v.clone();
            for (t, x) in targets.iter().zip(u) {
                v[*t] = data.dtype.round(match reduction {
                    Reduction::None => *x,
                    Reduction::Add => v[*t] + x,
                    Reduction::Mul => v[*t] * x,
                    Reduction::Max => v[*t].max(*x),
                    Reduction::Min => v[*t].min(*x),
                });
            }
            Data::Float(v)
        }
        (Data::Int(v), Data::Int(u)) => {
            let mut v = v.clone();
            for (t, x) in targets.iter().zip(u) {
                v[*t] = data.dtype.wrap(match reduction {
                    Reduction::None => *x,
                    Reduction::Add => v[*t].wrapping_add(*x),
                    Reduction::Mul => v[*t].wrapping_mul(*x),
                    Reduction::Max => v[*t].max(*x),
                    Reduction::Min => v[*t].min(*x),
                });
            }
            Data::Int(v)
        }
        _ => unreachable!("equal types hold the same kind of data"),
    };
    Ok(data.with(data.shape.clone(), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::f32(shape.to_vec(), v.to_vec())
    }

    fn i(shape: &[usize], v: &[i64]) -> Tensor {
        Tensor::i64(shape.to_vec(), v.to_vec())
    }

    #[test]
    fn broadcasting_follows_numpy() {
        let a = f(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let col = f(&[2, 1], &[10., 20.]);
        let row = f(&[3], &[1., 0., -1.]);
        assert_eq!(binary(Binary::Mul, &a, &col).expect("mul").data, Data::Float(vec![10., 20., 30., 80., 100., 120.]));
        assert_eq!(binary(Binary::Add, &a, &row).expect("add").data, Data::Float(vec![2., 2., 2., 5., 5., 5.]));
        let outer = binary(Binary::Add, &col, &row).expect("both ways");
        assert_eq!((outer.shape.clone(), outer.data), (vec![2, 3], Data::Float(vec![11., 10., 9., 21., 20., 19.])));
        assert!(binary(Binary::Add, &a, &f(&[2], &[1., 2.])).is_err(), "3 against 2");
        assert!(binary(Binary::Add, &a, &i(&[1], &[1])).is_err(), "float and int");
    }

    #[test]
    fn a_row_scale_or_a_scalar_takes_the_fast_path_and_gives_the_general_answer() {
        assert_eq!(run_length(&[3, 1], &[3, 4]), Some(4));
        assert_eq!(run_length(&[], &[3, 4]), Some(12));
        assert_eq!(run_length(&[4], &[3, 4]), None, "a row repeated is not a run");
        assert_eq!(run_length(&[3, 4], &[3, 4]), Some(1));
        let a = f(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let scale = f(&[2, 1], &[10., 100.]);
        let general = {
            let mut r = Vec::new();
            broadcast_each(&[2, 3], &a.shape, &scale.shape, |i, j| {
                r.push(a.floats().expect("f")[i] * scale.floats().expect("f")[j])
            });
            r
        };
        assert_eq!(binary(Binary::Mul, &a, &scale).expect("mul").data, Data::Float(general.clone()));
        assert_eq!(binary(Binary::Mul, &scale, &a).expect("mul").data, Data::Float(general));
    }

    #[test]
    fn integer_remainders_take_the_sign_fmod_says() {
        let a = i(&[4], &[7, -7, 7, -7]);
        let b = i(&[4], &[3, 3, -3, -3]);
        assert_eq!(binary(Binary::Mod { fmod: true }, &a, &b).expect("fmod").data, Data::Int(vec![1, -1, 1, -1]));
        assert_eq!(binary(Binary::Mod { fmod: false }, &a, &b).expect("mod").data, Data::Int(vec![1, 2, -2, -1]));
        assert!(binary(Binary::Mod { fmod: true }, &a, &i(&[], &[0])).is_err(), "by zero");
    }

    #[test]
    fn float16_results_are_rounded_to_float16() {
        let h = cast(&f(&[2], &[1.0, 3.0]), DType::F16);
        let third = binary(Binary::Div, &h, &cast(&f(&[], &[3.0]), DType::F16)).expect("div");
        assert_eq!(third.floats().expect("floats")[0], f16::from_f32(1.0 / 3.0).to_f32());
        assert_ne!(third.floats().expect("floats")[0], 1.0 / 3.0);
        let i8s = cast(&f(&[3], &[-1.9, 127.5, 300.0]), DType::I8);
        assert_eq!(i8s.data, Data::Int(vec![-1, 127, 44]), "truncated, then wrapped");
    }

    #[test]
    fn gather_slice_concat_and_reduce_place_values_as_onnx_does() {
        let t = f(&[3, 2], &[1., 2., 3., 4., 5., 6.]);
        let g = gather(&t, &i(&[2], &[2, -3]), 0).expect("gather");
        assert_eq!((g.shape.clone(), g.data), (vec![2, 2], Data::Float(vec![5., 6., 1., 2.])));
        assert!(gather(&t, &i(&[1], &[3]), 0).is_err(), "out of range");
        let cols = gather(&t, &i(&[], &[1]), 1).expect("axis 1");
        assert_eq!((cols.shape.clone(), cols.data), (vec![3], Data::Float(vec![2., 4., 6.])));
        let v = i(&[5], &[0, 1, 2, 3, 4]);
        let s = |st: i64, en: i64, step: i64| {
            slice(&v, &i(&[1], &[st]), &i(&[1], &[en]), Some(&i(&[1], &[0])), Some(&i(&[1], &[step])))
                .expect("slice")
                .data
        };
        assert_eq!(s(0, -1, 1), Data::Int(vec![0, 1, 2, 3]));
        assert_eq!(s(1, i64::MAX, 2), Data::Int(vec![1, 3]));
        assert_eq!(s(-1, i64::MIN, -2), Data::Int(vec![4, 2, 0]));
        let c = concat(&[&t, &f(&[3, 1], &[7., 8., 9.])], 1).expect("concat");
        assert_eq!((c.shape.clone(), c.data), (vec![3, 3], Data::Float(vec![1., 2., 7., 3., 4., 8., 5., 6., 9.])));
        let r = reduce_sum(&t, Some(&i(&[1], &[0])), false, false).expect("sum");
        assert_eq!((r.shape.clone(), r.data), (vec![2], Data::Float(vec![9., 12.])));
        let all = reduce_sum(&t, None, true, false).expect("all");
        assert_eq!((all.shape, all.data), (vec![1, 1], Data::Float(vec![21.])));
    }

    #[test]
    fn softmax_matmul_reshape_expand_unsqueeze_and_scatter() {
        let p = softmax(&f(&[3], &[0., 0., f32::MIN]), -1).expect("softmax");
        assert_eq!(p.data, Data::Float(vec![0.5, 0.5, 0.]));
        let m = matmul(&f(&[2, 2], &[1., 2., 3., 4.]), &f(&[2, 3], &[1., 0., 1., 0., 1., 1.])).expect("matmul");
        assert_eq!((m.shape.clone(), m.data), (vec![2, 3], Data::Float(vec![1., 2., 3., 3., 4., 7.])));
        let r = reshape(&f(&[4], &[1., 2., 3., 4.]), &i(&[2], &[2, -1]), false).expect("reshape");
        assert_eq!(r.shape, vec![2, 2]);
        assert!(reshape(&f(&[4], &[1., 2., 3., 4.]), &i(&[1], &[3]), false).is_err());
        let e = expand(&f(&[], &[1.]), &shape_of(&i(&[3], &[0, 0, 0]), 0, None)).expect("expand");
        assert_eq!((e.shape, e.data), (vec![3], Data::Float(vec![1., 1., 1.])));
        assert_eq!(unsqueeze(&f(&[3], &[1., 2., 3.]), &i(&[1], &[1])).expect("unsqueeze").shape, vec![3, 1]);
        let counts =
            scatter_elements(&f(&[3], &[0.; 3]), &i(&[4], &[2, 0, 2, 2]), &f(&[4], &[1.; 4]), 0, Reduction::Add)
                .expect("scatter");
        assert_eq!(counts.data, Data::Float(vec![1., 0., 3.]));
    }
}
