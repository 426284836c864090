//! The built-in ops: their signatures, argument checks, and the shape,
//! parameter, multiply-add and receptive-field rules that make graph nodes.

use super::eval::{Builder, Located, Scope, Value};
use crate::diag::{Code, Diagnostic, Loc, closest};
use crate::graph::{Init, Node, NodeId, Op, ParamSpec, ReceptiveField, UpsampleMode};
use crate::syntax::ast::Ident;

/// Largest channel count, spatial size, kernel, stride, ... a spec may ask for.
const MAX_DIM: usize = 1 << 20;

/// Every op with its parameters in positional order; the first is always the
/// input feature map. `concat` also takes any number of further inputs.
const SIGNATURES: &[(&str, &[&str], usize)] = &[
    // (name, parameters, how many are required)
    ("conv", &["x", "c", "k", "stride", "pad", "dilation", "groups", "bias"], 2),
    ("bn", &["x", "eps", "momentum"], 1),
    ("relu", &["x"], 1),
    ("sigmoid", &["x"], 1),
    ("maxpool", &["x", "k", "stride", "pad", "ceil"], 2),
    ("avgpool", &["x", "k", "stride", "pad", "ceil"], 2),
    ("gap", &["x"], 1),
    ("upsample", &["x", "scale", "size", "like", "mode", "align_corners"], 1),
    ("dropout", &["x", "p"], 1),
    ("flatten", &["x"], 1),
    ("linear", &["x", "n", "bias"], 2),
    ("concat", &["x"], 1),
];

pub const NAMES: &[&str] = &[
    "conv", "bn", "relu", "sigmoid", "maxpool", "avgpool", "gap", "upsample", "dropout", "flatten", "linear", "concat",
];

/// An op's parameters in positional order, and how many are required.
pub fn signature(name: &str) -> Option<(&'static [&'static str], usize)> {
    SIGNATURES.iter().find(|s| s.0 == name).map(|s| (s.1, s.2))
}

pub fn is_op(name: &str) -> bool {
    NAMES.contains(&name)
}

/// A whole number in `min..=max`, from a number value.
pub fn whole(v: &Value, min: usize, max: usize) -> Option<usize> {
    match v {
        Value::Num(n) if n.fract() == 0.0 && *n >= min as f64 && *n <= max as f64 => Some(*n as usize),
        _ => None,
    }
}

/// The arguments of one op call, bound to its parameters.
struct Args {
    op: &'static str,
    slots: Vec<Option<Located>>,
    /// Further positional inputs of `concat`.
    rest: Vec<Located>,
    call: Loc,
}

fn bind(b: &mut Builder, name: &str, args: Vec<(Option<Ident>, Located)>, call: Loc) -> Option<Args> {
    let &(op, params, required) = SIGNATURES.iter().find(|s| s.0 == name).expect("bind is called for ops only");
    let variadic = op == "concat";
    let mut a = Args { op, slots: vec![None; params.len()], rest: Vec::new(), call };
    let mut ok = true;
    let mut next = 0;
    for (arg_name, value) in args {
        let index = match arg_name {
            None if next < params.len() => {
                next += 1;
                next - 1
            }
            None if variadic => {
                a.rest.push(value);
                continue;
            }
            None => {
                b.error(Diagnostic::new(
                    Code::Argument,
                    value.loc,
                    format!(
                        "`{op}` takes at most {} argument{} ({}); this one is extra",
                        params.len(),
                        if params.len() == 1 { "" } else { "s" },
                        params.join(", ")
                    ),
                ));
                ok = false;
                continue;
            }
            Some(n) => match params.iter().position(|p| *p == n.name) {
                Some(i) => i,
                None => {
                    let loc = Loc { file: value.loc.file, span: n.span };
                    let mut d = Diagnostic::new(Code::Argument, loc, format!("`{op}` has no parameter `{}`", n.name));
                    d = match closest(&n.name, params.iter().copied()) {
                        Some(c) => d.hint(format!("did you mean `{c}`?")),
                        None => d.hint(format!("`{op}` takes {}", params.join(", "))),
                    };
                    b.error(d);
                    ok = false;
                    continue;
                }
            },
        };
        if a.slots[index].is_some() {
            b.error(Diagnostic::new(
                Code::Argument,
                value.loc,
                format!("`{}` of `{op}` is given twice", params[index]),
            ));
            ok = false;
            continue;
        }
        a.slots[index] = Some(value);
    }
    for (i, p) in params.iter().enumerate().take(required) {
        if a.slots[i].is_none() {
            let hint = if i == 0 {
                format!("pipe a value into it: `x |> {op}(...)`")
            } else {
                format!("`{op}` takes {}", params.join(", "))
            };
            b.error(Diagnostic::new(Code::Argument, call, format!("`{op}` needs argument `{p}`")).hint(hint));
            ok = false;
        }
    }
    ok.then_some(a)
}

impl Args {
    fn get(&self, i: usize) -> Option<&Located> {
        self.slots[i].as_ref()
    }

    fn param(&self, i: usize) -> &'static str {
        SIGNATURES.iter().find(|s| s.0 == self.op).expect("known op").1[i]
    }

    fn type_error(&self, b: &mut Builder, i: usize, wanted: &str) {
        let a = self.get(i).expect("only present arguments are checked");
        b.error(Diagnostic::new(
            Code::Type,
            a.loc,
            format!(
                "`{}` of `{}` must be {wanted}, but `{}` is {}",
                self.param(i),
                self.op,
                a.text,
                a.value.describe()
            ),
        ));
    }

    fn tensor(&self, b: &mut Builder, i: usize) -> Option<NodeId> {
        match &self.get(i)?.value {
            Value::Tensor(id) => Some(*id),
            _ => {
                self.type_error(b, i, "a feature map");
                None
            }
        }
    }

    /// A count such as a kernel size or a stride, with its default.
    fn whole(&self, b: &mut Builder, i: usize, default: usize, min: usize) -> Option<usize> {
        let Some(a) = self.get(i) else {
            return Some(default);
        };
        match &a.value {
            Value::Num(n) => match whole(&a.value, min, MAX_DIM) {
                Some(v) => Some(v),
                None => {
                    let what = if n.fract() != 0.0 { "a whole number".to_string() } else { format!("at least {min}") };
                    let too_big = *n > MAX_DIM as f64;
                    let msg = if too_big {
                        format!(
                            "`{}` of `{}` is {}, more than the limit of {MAX_DIM}",
                            self.param(i),
                            self.op,
                            fmt_num(*n)
                        )
                    } else {
                        format!("`{}` of `{}` must be {what}, but it is {}", self.param(i), self.op, fmt_num(*n))
                    };
                    b.error(Diagnostic::new(Code::Range, a.loc, msg));
                    None
                }
            },
            _ => {
                self.type_error(b, i, "a number");
                None
            }
        }
    }

    /// A channel or feature count: any positive number, rounded half away
    /// from zero and at least 1, so `64 * width` works at every width.
    fn channels(&self, b: &mut Builder, i: usize) -> Option<usize> {
        let a = self.get(i)?;
        match &a.value {
            Value::Num(n) if *n > 0.0 && *n <= MAX_DIM as f64 => Some((n.round() as usize).max(1)),
            Value::Num(n) => {
                let msg = if *n > 0.0 {
                    format!("`{}` of `{}` is {}, more than the limit of {MAX_DIM}", self.param(i), self.op, fmt_num(*n))
                } else {
                    format!("`{}` of `{}` must be positive, but it is {}", self.param(i), self.op, fmt_num(*n))
                };
                b.error(Diagnostic::new(Code::Range, a.loc, msg));
                None
            }
            _ => {
                self.type_error(b, i, "a number");
                None
            }
        }
    }

    fn number(&self, b: &mut Builder, i: usize, default: f64, range: std::ops::Range<f64>) -> Option<f64> {
        let Some(a) = self.get(i) else {
            return Some(default);
        };
        match &a.value {
            Value::Num(n) if range.contains(n) => Some(*n),
            Value::Num(n) => {
                let bounds = if range.start == f64::MIN_POSITIVE {
                    format!("above 0 and below {}", fmt_num(range.end))
                } else {
                    format!("at least {} and below {}", fmt_num(range.start), fmt_num(range.end))
                };
                let msg = format!("`{}` of `{}` must be {bounds}, but it is {}", self.param(i), self.op, fmt_num(*n));
                b.error(Diagnostic::new(Code::Range, a.loc, msg));
                None
            }
            _ => {
                self.type_error(b, i, "a number");
                None
            }
        }
    }

    fn boolean(&self, b: &mut Builder, i: usize, default: bool) -> Option<bool> {
        let Some(a) = self.get(i) else {
            return Some(default);
        };
        match &a.value {
            Value::Bool(v) => Some(*v),
            _ => {
                self.type_error(b, i, "`true` or `false`");
                None
            }
        }
    }
}

/// `3` -> "3", `0.5` -> "0.5".
pub fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 { format!("{}", n as i64) } else { format!("{n}") }
}

pub fn fmt_shape(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}

fn node(op: Op, inputs: Vec<NodeId>, shape: Vec<usize>, params: Vec<ParamSpec>, macs: u64, rf: ReceptiveField) -> Node {
    Node { name: String::new(), op, inputs, shape, params, macs, receptive_field: rf }
}

fn param(role: &str, shape: Vec<usize>, init: Init) -> ParamSpec {
    ParamSpec { name: role.to_string(), shape, init }
}

/// The shape `[C, H, W]` of a feature-map argument, or an error.
fn chw(b: &mut Builder, a: &Args, i: usize, id: NodeId) -> Option<(usize, usize, usize)> {
    match *b.shape(id) {
        [c, h, w] => Some((c, h, w)),
        ref other => {
            let other = fmt_shape(other);
            let arg = a.get(i).expect("present");
            let d = Diagnostic::new(
                Code::Shape,
                arg.loc,
                format!("`{}` needs a [C, H, W] feature map, but `{}` is {other}", a.op, arg.text),
            );
            b.error(d);
            None
        }
    }
}

pub fn apply(b: &mut Builder, scope: &Scope, name: &str, args: Vec<(Option<Ident>, Located)>, loc: Loc) -> Value {
    let Some(a) = bind(b, name, args, loc) else {
        return Value::Error;
    };
    // Resizing to the size a map already has is the identity: no node.
    if a.op == "upsample"
        && let Some(Value::Tensor(x)) = a.get(0).map(|x| &x.value)
        && let Some(Value::Tensor(like)) = a.get(3).map(|l| &l.value)
        && b.shape(*x).len() == 3
        && b.shape(*x)[1..] == b.shape(*like)[1..]
        && a.get(1).is_none()
        && a.get(2).is_none()
    {
        return Value::Tensor(*x);
    }
    let made = match a.op {
        "conv" => conv(b, &a),
        "bn" => batch_norm(b, &a),
        "relu" => a.tensor(b, 0).map(|x| same_shape(b, Op::Relu, x)),
        "sigmoid" => a.tensor(b, 0).map(|x| same_shape(b, Op::Sigmoid, x)),
        "maxpool" | "avgpool" => pool(b, &a),
        "gap" => gap(b, &a),
        "upsample" => upsample(b, &a),
        "dropout" => {
            let (x, p) = (a.tensor(b, 0), a.number(b, 1, 0.5, 0.0..1.0));
            x.zip(p).map(|(x, p)| same_shape(b, Op::Dropout { p }, x))
        }
        "flatten" => a.tensor(b, 0).map(|x| {
            let n = b.shape(x).iter().product();
            node(Op::Flatten, vec![x], vec![n], vec![], 0, whole_input_rf(b, x))
        }),
        "linear" => linear(b, &a),
        "concat" => concat(b, &a),
        other => unreachable!("op `{other}` has a signature but no rule"),
    };
    match made {
        Some(n) => b.add_node(scope, a.op, n, loc),
        None => Value::Error,
    }
}

fn same_shape(b: &Builder, op: Op, x: NodeId) -> Node {
    node(op, vec![x], b.shape(x).to_vec(), vec![], 0, b.rf(x))
}

/// For ops that see every position of their input (gap, flatten, linear).
fn whole_input_rf(b: &Builder, x: NodeId) -> ReceptiveField {
    let rf = b.rf(x);
    match *b.shape(x) {
        [_, h, w] => ReceptiveField { size: rf.size + (h.max(w) - 1) as f64 * rf.jump, jump: rf.jump },
        _ => rf,
    }
}

fn conv(b: &mut Builder, a: &Args) -> Option<Node> {
    let x = a.tensor(b, 0);
    let c = a.channels(b, 1);
    let k = a.whole(b, 2, 1, 1);
    let stride = a.whole(b, 3, 1, 1);
    let same = matches!(a.get(4).map(|p| &p.value), Some(Value::Sym("same")));
    let pad = if same { Some(0) } else { a.whole(b, 4, 0, 0) };
    let dilation = a.whole(b, 5, 1, 1);
    let groups = a.whole(b, 6, 1, 1);
    let bias = a.boolean(b, 7, true);
    let (x, c, k, stride, pad, dilation, groups, bias) = (x?, c?, k?, stride?, pad?, dilation?, groups?, bias?);
    let (cin, h, w) = chw(b, a, 0, x)?;
    let reach = dilation * (k - 1);
    let pad = if same {
        if reach % 2 == 1 {
            let loc = a.get(4).expect("present").loc;
            b.error(Diagnostic::new(
                Code::Range,
                loc,
                format!(
                    "`pad = same` needs an odd kernel span, but kernel {k} with dilation {dilation} spans {}",
                    reach + 1
                ),
            ));
            return None;
        }
        reach / 2
    } else {
        pad
    };
    if cin % groups != 0 || c % groups != 0 {
        let loc = a.get(6).expect("groups differ from the default").loc;
        let msg =
            format!("`groups = {groups}` must divide both the input channels ({cin}) and the output channels ({c})");
        b.error(Diagnostic::new(Code::Shape, loc, msg));
        return None;
    }
    let (oh, ow) = (
        window_out(b, a, 2, h, w, reach + 1, stride, pad, false)?,
        window_out(b, a, 2, w, h, reach + 1, stride, pad, false)?,
    );
    let fan_in = cin / groups * k * k;
    let mut params = vec![param("weight", vec![c, cin / groups, k, k], Init::KaimingNormal { fan_in })];
    if bias {
        params.push(param("bias", vec![c], Init::UniformFanIn { fan_in }));
    }
    let macs = (c as u64).saturating_mul((oh * ow) as u64).saturating_mul(fan_in as u64);
    let rf = b.rf(x);
    let rf = ReceptiveField { size: rf.size + reach as f64 * rf.jump, jump: rf.jump * stride as f64 };
    let op = Op::Conv { out_channels: c, kernel: k, stride, padding: pad, dilation, groups, bias };
    Some(node(op, vec![x], vec![c, oh, ow], params, macs, rf))
}

/// Output size of a sliding window along one axis, or an error at the
/// kernel argument (`kernel_arg`) when the window does not fit; `other` is
/// the size of the other axis, only for the message.
#[allow(clippy::too_many_arguments)]
fn window_out(
    b: &mut Builder,
    a: &Args,
    kernel_arg: usize,
    size: usize,
    other: usize,
    span: usize,
    stride: usize,
    pad: usize,
    ceil: bool,
) -> Option<usize> {
    let out = crate::graph::window_output(size, span, stride, pad, ceil);
    if out.is_none() {
        let x = a.get(0).expect("present");
        let at = a.get(kernel_arg).map_or(a.call, |k| k.loc);
        let msg = format!(
            "kernel larger than its input: `{}` spans {span}x{span}, but `{}` is {size}x{other} padded by {pad}",
            a.op, x.text
        );
        b.error(Diagnostic::new(Code::Shape, at, msg));
    }
    out
}

fn batch_norm(b: &mut Builder, a: &Args) -> Option<Node> {
    let x = a.tensor(b, 0);
    let eps = a.number(b, 1, 1e-5, f64::MIN_POSITIVE..1.0);
    let momentum = a.number(b, 2, 0.1, 0.0..1.0);
    let (x, eps, momentum) = (x?, eps?, momentum?);
    let c = b.shape(x)[0];
    let params = vec![param("weight", vec![c], Init::Ones), param("bias", vec![c], Init::Zeros)];
    Some(node(Op::BatchNorm { eps, momentum }, vec![x], b.shape(x).to_vec(), params, 0, b.rf(x)))
}

fn pool(b: &mut Builder, a: &Args) -> Option<Node> {
    let x = a.tensor(b, 0);
    let k = a.whole(b, 1, 1, 1);
    let stride = match (k, a.get(2)) {
        (Some(k), None) => Some(k),
        _ => a.whole(b, 2, 1, 1),
    };
    let pad = a.whole(b, 3, 0, 0);
    let ceil = a.boolean(b, 4, false);
    let (x, k, stride, pad, ceil_mode) = (x?, k?, stride?, pad?, ceil?);
    let (c, h, w) = chw(b, a, 0, x)?;
    if pad > k / 2 {
        let loc = a.get(3).expect("pad above 0 was given").loc;
        b.error(Diagnostic::new(
            Code::Range,
            loc,
            format!("`pad` of `{}` may be at most half the kernel ({}), but it is {pad}", a.op, k / 2),
        ));
        return None;
    }
    let (oh, ow) =
        (window_out(b, a, 1, h, w, k, stride, pad, ceil_mode)?, window_out(b, a, 1, w, h, k, stride, pad, ceil_mode)?);
    let op = if a.op == "maxpool" {
        Op::MaxPool { kernel: k, stride, padding: pad, ceil_mode }
    } else {
        Op::AvgPool { kernel: k, stride, padding: pad, ceil_mode }
    };
    let rf = b.rf(x);
    let rf = ReceptiveField { size: rf.size + (k - 1) as f64 * rf.jump, jump: rf.jump * stride as f64 };
    Some(node(op, vec![x], vec![c, oh, ow], vec![], 0, rf))
}

fn gap(b: &mut Builder, a: &Args) -> Option<Node> {
    let x = a.tensor(b, 0)?;
    let (c, _, _) = chw(b, a, 0, x)?;
    Some(node(Op::GlobalAvgPool, vec![x], vec![c, 1, 1], vec![], 0, whole_input_rf(b, x)))
}

fn upsample(b: &mut Builder, a: &Args) -> Option<Node> {
    let x = a.tensor(b, 0);
    let align_corners = a.boolean(b, 5, false);
    let mode = match a.get(4).map(|m| &m.value) {
        None | Some(Value::Sym("nearest")) => Some(UpsampleMode::Nearest),
        Some(Value::Sym("bilinear")) => align_corners.map(|align_corners| UpsampleMode::Bilinear { align_corners }),
        Some(_) => {
            let m = a.get(4).expect("present");
            b.error(Diagnostic::new(
                Code::Type,
                m.loc,
                format!("`mode` of `upsample` is `nearest` or `bilinear`, not `{}`", m.text),
            ));
            None
        }
    };
    let (x, mode) = (x?, mode?);
    let (c, h, w) = chw(b, a, 0, x)?;
    let given: Vec<usize> = (1..=3).filter(|i| a.get(*i).is_some()).collect();
    let size = match given.as_slice() {
        [1] => {
            let s = a.number(b, 1, 1.0, 1e-6..MAX_DIM as f64)?;
            [(h as f64 * s).floor() as usize, (w as f64 * s).floor() as usize]
        }
        [2] => {
            let arg = a.get(2).expect("present");
            let dims: Option<Vec<usize>> = match &arg.value {
                Value::List(items) => items.iter().map(|v| whole(v, 1, MAX_DIM)).collect(),
                v => whole(v, 1, MAX_DIM).map(|n| vec![n, n]),
            };
            match dims.as_deref() {
                Some([oh, ow]) => [*oh, *ow],
                _ => {
                    b.error(Diagnostic::new(
                        Code::Type,
                        arg.loc,
                        format!("`size` of `upsample` is `[H, W]` or one number, not `{}`", arg.text),
                    ));
                    return None;
                }
            }
        }
        [3] => {
            let like = a.tensor(b, 3)?;
            let (_, lh, lw) = chw(b, a, 3, like)?;
            [lh, lw]
        }
        _ => {
            b.error(Diagnostic::new(
                Code::Argument,
                a.call,
                "`upsample` needs exactly one of `scale`, `size` or `like`",
            ));
            return None;
        }
    };
    if size[0] == 0 || size[1] == 0 {
        b.error(Diagnostic::new(
            Code::Shape,
            a.call,
            format!("`upsample` would make `{}` empty", a.get(0).expect("present").text),
        ));
        return None;
    }
    let rf = b.rf(x);
    let rf = ReceptiveField { size: rf.size, jump: rf.jump * h as f64 / size[0] as f64 };
    Some(node(Op::Upsample { size, mode }, vec![x], vec![c, size[0], size[1]], vec![], 0, rf))
}

fn linear(b: &mut Builder, a: &Args) -> Option<Node> {
    let x = a.tensor(b, 0);
    let n = a.channels(b, 1);
    let bias = a.boolean(b, 2, true);
    let (x, n, bias) = (x?, n?, bias?);
    let fan_in: usize = b.shape(x).iter().product();
    let mut params = vec![param("weight", vec![n, fan_in], Init::UniformFanIn { fan_in })];
    if bias {
        params.push(param("bias", vec![n], Init::UniformFanIn { fan_in }));
    }
    let macs = (n as u64).saturating_mul(fan_in as u64);
    Some(node(Op::Linear { out_features: n, bias }, vec![x], vec![n], params, macs, whole_input_rf(b, x)))
}

fn concat(b: &mut Builder, a: &Args) -> Option<Node> {
    let first = a.get(0)?.clone();
    let all: Vec<Located> = std::iter::once(first).chain(a.rest.iter().cloned()).collect();
    let mut ids = Vec::new();
    for arg in &all {
        match arg.value {
            Value::Tensor(id) => ids.push(id),
            _ => {
                let msg = format!("`concat` joins feature maps, but `{}` is {}", arg.text, arg.value.describe());
                b.error(Diagnostic::new(Code::Type, arg.loc, msg));
                return None;
            }
        }
    }
    let shape0 = b.shape(ids[0]).to_vec();
    if shape0.len() != 3 {
        b.error(Diagnostic::new(
            Code::Shape,
            all[0].loc,
            format!("`concat` joins [C, H, W] feature maps, but `{}` is {}", all[0].text, fmt_shape(&shape0)),
        ));
        return None;
    }
    let mut channels = 0;
    let mut rf = b.rf(ids[0]);
    for (arg, id) in all.iter().zip(&ids) {
        let s = b.shape(*id).to_vec();
        if s.len() != 3 || s[1..] != shape0[1..] {
            let msg = format!(
                "concat needs equal spatial sizes: `{}` is {}, `{}` is {}",
                all[0].text,
                fmt_shape(&shape0),
                arg.text,
                fmt_shape(&s)
            );
            b.error(Diagnostic::new(Code::Shape, arg.loc, msg));
            return None;
        }
        channels += s[0];
        rf = max_rf(rf, b.rf(*id));
    }
    Some(node(Op::Concat, ids, vec![channels, shape0[1], shape0[2]], vec![], 0, rf))
}

fn max_rf(a: ReceptiveField, b: ReceptiveField) -> ReceptiveField {
    ReceptiveField { size: a.size.max(b.size), jump: a.jump.max(b.jump) }
}

/// `+` and `*` of two feature maps; a size-1 dimension broadcasts.
pub fn elementwise(b: &mut Builder, scope: &Scope, op: Op, l: &Located, r: &Located, loc: Loc) -> Value {
    let (Value::Tensor(x), Value::Tensor(y)) = (&l.value, &r.value) else {
        unreachable!("called with two feature maps")
    };
    let (sx, sy) = (b.shape(*x).to_vec(), b.shape(*y).to_vec());
    let fits = sx.len() == sy.len() && sx.iter().zip(&sy).all(|(p, q)| p == q || *p == 1 || *q == 1);
    if !fits {
        let symbol = if op == Op::Add { "+" } else { "*" };
        let msg = format!(
            "`{symbol}` needs equal shapes: `{}` is {}, `{}` is {}",
            l.text,
            fmt_shape(&sx),
            r.text,
            fmt_shape(&sy)
        );
        b.error(
            Diagnostic::new(Code::Shape, loc, msg)
                .hint("a dimension of size 1 broadcasts, as a 1-channel mask over all channels"),
        );
        return Value::Error;
    }
    let shape = sx.iter().zip(&sy).map(|(p, q)| *p.max(q)).collect();
    let rf = max_rf(b.rf(*x), b.rf(*y));
    let base = op.kind();
    b.add_node(scope, base, node(op, vec![*x, *y], shape, vec![], 0, rf), loc)
}

pub fn affine(b: &mut Builder, scope: &Scope, x: NodeId, scale: f64, shift: f64, loc: Loc) -> Value {
    let n = same_shape(b, Op::Affine { scale, shift }, x);
    b.add_node(scope, "affine", n, loc)
}
