//! The native CPU engine against candle's model, which is the reference:
//! the same weights and images must give the same logits, running
//! statistics and parameter gradients, for every paper spec and every op
//! the specs use (convolutions with stride, padding, dilation and groups,
//! batch norm with and without a fused ReLU, pools, resizing, attention's
//! broadcasting arithmetic, dropout, linear). The model runs both its
//! kernel sets: netc's CPU kernels, and the portable compositions of
//! candle's own ops that a GPU runs (`--engine candle`, `--device cuda`).

mod common;

use std::collections::BTreeMap;

use candle_core::{Device, Tensor, Var};
use netc::graph::{Graph, Op};
use netc::runtime::native::Net;
use netc::runtime::{Kernels, Mode, Model};
use netc::train::{StepSettings, softmax_cross_entropy, train_step};

use common::Rng;

/// The L2 norm of `a - b` relative to that of `b`, or of `floor` when `b`
/// is smaller (gradients that are zero but for rounding).
fn relative_error(a: &[f32], b: &[f32], floor: f64) -> f64 {
    assert_eq!(a.len(), b.len());
    let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
    let diff = norm(&mut a.iter().zip(b).map(|(x, y)| (x - y) as f64));
    diff / norm(&mut b.iter().map(|y| *y as f64)).max(floor)
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// `n` random images for `graph`, as a slice and as a candle tensor.
fn random_images(graph: &netc::graph::Graph, n: usize, rng: &mut Rng) -> (Vec<f32>, Tensor) {
    let dims = graph.input_shape();
    let images: Vec<f32> = (0..n * dims.iter().product::<usize>()).map(|_| rng.uniform() as f32).collect();
    let x = Tensor::from_slice(&images, (n, dims[0], dims[1], dims[2]), &Device::Cpu).unwrap();
    (images, x)
}

/// Conv biases read only by batch norm: their gradient is zero but for
/// rounding, so their error counts relative to a hundredth of the net's
/// largest gradient.
fn before_batch_norm(graph: &Graph, param: &str) -> bool {
    graph.nodes.iter().enumerate().any(|(id, node)| {
        let readers = || graph.nodes.iter().filter(move |m| m.inputs.contains(&id));
        matches!(node.op, Op::Conv { .. })
            && node.params.iter().any(|p| p.name == param && param.ends_with(".bias"))
            && readers().all(|m| matches!(m.op, Op::BatchNorm { .. }))
    })
}

/// Runs a training pass of `n + 2` images through both engines (so that
/// the compared pass reuses buffers sized for a larger batch, as an
/// epoch's last batch does), then one of `n` images, and compares
/// everything they produce. Gradients agree within `grad_tolerance`
/// (relative L2 error per parameter), counted relative to at least
/// `floor` times the net's largest gradient.
fn engines_agree(graph: &Graph, n: usize, seed: u64, grad_tolerance: f64, floor: f64) {
    for kernels in [Kernels::Cpu, Kernels::Portable] {
        agree(graph, kernels, n, seed, grad_tolerance, floor);
    }
}

fn agree(graph: &Graph, kernels: Kernels, n: usize, seed: u64, grad_tolerance: f64, floor: f64) {
    let mut model = Model::new(graph, &Device::Cpu, seed).unwrap().to(&Device::Cpu, kernels).unwrap();
    let mut net = Net::from_model(&model).unwrap();
    let name = format!("{} ({kernels:?} kernels)", graph.name);
    let mut rng = Rng(seed | 1);
    let (images, x) = random_images(graph, n + 2, &mut rng);
    let labels: Vec<u32> = (0..n as u32 + 2).map(|i| i % 10).collect();
    model.forward(&x, Mode::Train, &[], seed + 1).unwrap();
    let logits = net.forward(&images, n + 2, Mode::Train, seed + 1).unwrap();
    let loss = softmax_cross_entropy(logits, &labels, 0.0);
    net.backward(&loss.grad).unwrap();

    let (images, x) = random_images(graph, n, &mut rng);
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 10).collect();

    let theirs = model.forward(&x, Mode::Train, &[], seed).unwrap().logits;
    let ours = net.forward(&images, n, Mode::Train, seed).unwrap().to_vec();
    let err = relative_error(&ours, &flat(&theirs), 1e-6);
    assert!(err < 1e-4, "{name}: training logits differ by {err:e}");

    // The gradient of sum(logits * g) is the backward pass of g.
    let loss = softmax_cross_entropy(&ours, &labels, 0.1);
    let g = Tensor::from_slice(&loss.grad, theirs.dims(), &Device::Cpu).unwrap();
    let grads = (&theirs * &g).unwrap().sum_all().unwrap().backward().unwrap();
    net.backward(&loss.grad).unwrap();
    let vars: &BTreeMap<String, Var> = model.params();
    let wanted: Vec<Vec<f32>> = net
        .params()
        .iter()
        .map(|p| grads.get(vars[&p.name].as_tensor()).map(flat).unwrap_or_else(|| vec![0.0; p.grad.len()]))
        .collect();
    let largest = wanted.iter().map(|w| w.iter().map(|v| (v * v) as f64).sum::<f64>().sqrt()).fold(0.0, f64::max);
    for (p, want) in net.params().iter().zip(&wanted) {
        let floor = if before_batch_norm(graph, &p.name) { 1e-2 } else { floor };
        let err = relative_error(&p.grad, want, floor * largest);
        assert!(err < grad_tolerance, "{name}: the gradient of `{}` differs by {err:e}", p.name);
    }

    let (ours, theirs) = (net.state(), model.state());
    for (key, t) in &theirs {
        let err = relative_error(&flat(&ours[key]), &flat(t), 1e-6);
        assert!(err < 1e-5, "{name}: `{key}` differs by {err:e} after a training pass");
    }

    let theirs = model.forward(&x, Mode::Eval, &[], 0).unwrap().logits;
    // The running statistics were updated twice by now; evaluation uses them.
    let ours = net.forward(&images, n, Mode::Eval, 0).unwrap();
    let err = relative_error(ours, &flat(&theirs), 1e-6);
    assert!(err < 1e-4, "{name}: evaluation logits differ by {err:e}");
}

/// The graph of spec text, or a panic with its diagnostics.
fn inline(spec: &str) -> netc::graph::Graph {
    let path = std::path::Path::new("tests/inline.net");
    netc::compile::compile_source(path, spec.to_string(), &[]).unwrap_or_else(|e| panic!("{}", e.render())).graph
}

/// Without ReLU or max pooling, no rounding difference can flip a mask or
/// move a maximum, so the engines agree to float precision. `w` and `d`
/// have the channels for Winograd's F(2x2, 3x3), plain and dilated, `d`
/// with partial tiles; the last three 1x1 convolutions read the same
/// input, so they run as one product both ways.
#[test]
fn smooth_net_to_float_precision() {
    let spec = r#"
net smooth(classes = 10) {
    input x: [3, 12, 12]
    a = x |> conv(8, 3, stride = 2, pad = 1) |> bn |> sigmoid
    b = a |> conv(8, 3, pad = 2, dilation = 2, groups = 2) |> bn |> sigmoid
    w = concat(a, b) |> conv(16, 1) |> conv(20, 3, pad = 1) |> bn |> sigmoid
    d = w |> conv(16, 3, pad = 0, dilation = 2, bias = false) |> bn |> sigmoid |> upsample(size = [6, 6])
    e = concat(a, b |> upsample(size = [6, 6], mode = bilinear), d)
    c = concat(e |> conv(6, 1) |> sigmoid, e |> conv(3, 1, bias = false), e |> conv(1, 1) |> sigmoid) |> bn
    logits = c |> sigmoid |> avgpool(2) |> linear(classes)
    return logits
}
"#;
    engines_agree(&inline(spec), 4, 9, 1e-4, 0.0);
}

/// In the deep specs, a rounding difference now and then lands a ReLU
/// input on the other side of zero, or moves a max-pool's maximum, and
/// the two engines then route a gradient differently: a few percent of
/// the gradient's size at most (or, for the smallest gradients, of a
/// thousandth of the largest), where a wrong kernel gives errors of order
/// one. The nets above hold every kernel to 1e-4 without that noise.
///
/// candle's `conv2d` sums in another order than the native engine's
/// product, where netc's CPU kernels sum in the same one, so the portable
/// kernels see more of those flips: each moves every gradient upstream of
/// it a little (seen: 2-4% typical, 9.6% at most in inception_v1 at width
/// 0.125, batch 3), so they are held to 15%. Their kernels are held to
/// 1e-4 by the small nets below.
fn check_spec(path: &str, set: &[(&str, f64)]) {
    let graph = common::compiled(path, set).graph;
    agree(&graph, Kernels::Cpu, 3, 11, 5e-2, 1e-3);
    agree(&graph, Kernels::Portable, 3, 11, 0.15, 1e-3);
}

#[test]
fn small_cnn_with_dropout() {
    check_spec("tests/fixtures/small_cnn.net", &[]);
}

#[test]
fn inception_v1() {
    check_spec("specs/inception_v1.net", &[("width", 0.125)]);
}

#[test]
fn ours_with_atrous_convolution_and_shared_attention() {
    check_spec("specs/ours.net", &[("width", 0.125)]);
}

#[test]
fn ran92_with_its_masks_and_resizing() {
    check_spec("specs/ran92.net", &[("width", 0.0625)]);
}

#[test]
fn attention_early_middle_and_later() {
    for stage in ["early", "middle", "later"] {
        check_spec(&format!("specs/attention_{stage}.net"), &[("width", 0.125)]);
    }
}

/// Ops no paper spec uses, or uses in one configuration only.
#[test]
fn every_op_in_its_variants() {
    let spec = r#"
net variants(classes = 10) {
    input x: [3, 13, 11]
    a = x |> conv(8, 3, stride = 2, pad = 1) |> bn |> relu
    b = a |> conv(8, 3, pad = 2, dilation = 2, groups = 4) |> bn
    c = b |> relu |> maxpool(3, stride = 2, pad = 1, ceil = true)
    m = c |> avgpool(2, stride = 1, pad = 1, ceil = true) |> avgpool(2, stride = 1) |> conv(1, 1, bias = false) |> sigmoid
    e = c * m + c * 0.5
    f = e |> upsample(size = [9, 8]) |> conv(4, 1, groups = 2) |> relu |> dropout(0.3)
    g = f |> upsample(size = [5, 5], mode = bilinear, align_corners = true)
    h = concat(g, g, f |> upsample(like = g, mode = bilinear)) |> avgpool(3, stride = 1, pad = 1)
    logits = h |> flatten |> dropout(0.0) |> linear(classes)
    probe mid = b
    return logits
}
"#;
    engines_agree(&inline(spec), 2, 5, 1e-4, 0.0);
}

/// A ReLU behind an alias of a batch norm that something else also reads
/// must not be fused into the batch norm: that reader needs the values
/// before the ReLU.
#[test]
fn relu_behind_an_alias_is_not_fused() {
    let spec = r#"
net alias(classes = 10) {
    input x: [3, 8, 8]
    b = x |> conv(4, 3, pad = 1) |> bn |> dropout(0.0)
    r = b |> relu
    logits = concat(r, b) |> gap |> linear(classes)
    return logits
}
"#;
    engines_agree(&inline(spec), 3, 4, 1e-4, 0.0);
}

/// A max-pool window too large for the engine's taps is refused by name,
/// not run wrong.
#[test]
fn an_oversized_max_pool_window_is_refused() {
    let spec = r#"
net huge(classes = 10) {
    input x: [1, 256, 256]
    logits = x |> maxpool(256) |> flatten |> linear(classes)
    return logits
}
"#;
    let err = netc::runtime::native::Net::new(&inline(spec)).err().expect("refused");
    assert!(err.0.contains("256x256") && err.0.contains("--engine candle"), "{err}");
}

/// A branch that does not reach the output gets no gradient, and the
/// optimiser leaves its parameters alone, as PyTorch does with `None`;
/// also when it is a 1x1 convolution whose backward pass runs with a
/// sibling's that does reach it.
#[test]
fn parameters_off_the_output_path_are_not_updated() {
    let spec = r#"
net dead(classes = 10) {
    input x: [3, 8, 8]
    unused = x |> conv(2, 1)
    logits = x |> conv(3, 1) |> conv(4, 3, pad = 1) |> bn |> relu |> gap |> linear(classes)
    return logits
}
"#;
    let graph = inline(spec);
    let mut net = Net::from_model(&Model::new(&graph, &Device::Cpu, 1).unwrap()).unwrap();
    let (images, _) = random_images(&graph, 4, &mut Rng(3));
    let before: Vec<Vec<f32>> = net.params().iter().map(|p| p.value.clone()).collect();
    let mut optimizer = netc::train::Optimizer::new(&netc::recipe::Optimizer::default());
    let settings = StepSettings { lr: 0.1, label_smoothing: 0.0, grad_clip: None, dropout_seed: 0 };
    train_step(&mut net, &mut optimizer, &images, &[0, 1, 2, 3], &settings).unwrap();
    for (p, old) in net.params().iter().zip(&before) {
        let moved = p.value != *old;
        assert_eq!(moved, !p.name.starts_with("unused."), "`{}`: reached {}, moved {moved}", p.name, p.has_grad);
    }
}

/// The engine keeps convolution weights reordered for its products; an
/// update through `params_mut` must reach the next forward pass.
#[test]
fn an_update_reaches_the_next_forward_pass() {
    let graph = common::compiled("tests/fixtures/small_cnn.net", &[]).graph;
    let mut model = Model::new(&graph, &Device::Cpu, 2).unwrap();
    let mut net = Net::from_model(&model).unwrap();
    let (images, x) = random_images(&graph, 4, &mut Rng(5));
    let before = net.forward(&images, 4, Mode::Eval, 0).unwrap().to_vec();
    let mut optimizer = netc::train::Optimizer::new(&netc::recipe::Optimizer::default());
    let settings = StepSettings { lr: 0.1, label_smoothing: 0.0, grad_clip: None, dropout_seed: 0 };
    train_step(&mut net, &mut optimizer, &images, &[0, 1, 2, 3], &settings).unwrap();
    let after = net.forward(&images, 4, Mode::Eval, 0).unwrap().to_vec();
    assert_ne!(before, after);
    let weights: std::collections::HashMap<String, Tensor> = net.state().into_iter().collect();
    model.load_state(&weights, &[]).unwrap();
    let theirs = flat(&model.forward(&x, Mode::Eval, &[], 0).unwrap().logits);
    let err = relative_error(&after, &theirs, 1e-6);
    assert!(err < 1e-4, "logits after an update differ from candle's with the same weights by {err:e}");
}
