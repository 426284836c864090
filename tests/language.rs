//! The language, feature by feature: one small spec per test, checked
//! through the compiled graph or the diagnostics.

mod common;

use std::path::Path;

use common::{check, errors};
use netc::compile::compile_source;
use netc::graph::{Graph, Op};

fn graph(spec: &str) -> Graph {
    compile_source(Path::new("tests/inline.net"), spec.to_string(), &[]).unwrap_or_else(|e| panic!("{e}")).graph
}

fn shape(g: &Graph, node: &str) -> Vec<usize> {
    g.node(node)
        .unwrap_or_else(|| panic!("no node `{node}` in {:?}", g.nodes.iter().map(|n| &n.name).collect::<Vec<_>>()))
        .shape
        .clone()
}

/// A net around one statement: input `x` is [3, 32, 32] and `y` is returned.
fn net(body: &str) -> String {
    format!("net t(width = 1.0) {{\n    input x: [3, 32, 32]\n{body}\n    return y\n}}\n")
}

#[test]
fn a_pipe_feeds_its_left_side_as_first_argument() {
    let g = graph(&net("    y = x |> conv(8, 3, pad = same) |> bn |> relu"));
    assert_eq!(shape(&g, "y.relu"), [8, 32, 32]);
    assert_eq!(g.node("y.conv").map(|n| n.inputs.clone()), Some(vec![0]));
}

#[test]
fn channel_math_rounds_half_away_from_zero_and_keeps_at_least_one() {
    let g = graph(&net("    a = conv(x, 2.5)\n    b = conv(a, 3.5 * width)\n    y = conv(b, 0.2)"));
    assert_eq!(shape(&g, "a")[0], 3);
    assert_eq!(shape(&g, "b")[0], 4);
    assert_eq!(shape(&g, "y")[0], 1);
}

#[test]
fn one_node_assignments_take_the_name_and_parameters_follow_it() {
    let g = graph(&net("    y = conv(x, 8, 3)"));
    let params: Vec<&str> = g.nodes[1].params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(g.nodes[1].name, "y");
    assert_eq!(params, ["y.weight", "y.bias"]);
}

#[test]
fn block_instances_name_their_nodes_hierarchically() {
    let spec = "block unit(x, c) {\n  inner = conv(x, c, 1)\n  return relu(inner)\n}\n".to_string()
        + &net("    y = unit(x, 4)");
    let g = graph(&spec);
    let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["x", "y.inner", "y.relu"]);
}

#[test]
fn repeat_stacks_numbered_instances() {
    let spec = "block unit(x, c) {\n  return x |> conv(c, 3, pad = 1) |> relu\n}\n".to_string()
        + &net("    y = x |> repeat(3) unit(4)");
    let g = graph(&spec);
    assert_eq!(shape(&g, "y.2.relu"), [4, 32, 32]);
    assert_eq!(g.node("y.1.conv").map(|n| n.inputs[0]), g.nodes.iter().position(|n| n.name == "y.0.relu"));
}

#[test]
fn defaults_may_use_earlier_parameters() {
    let spec = "block squeeze(x, c, mid = c / 4) {\n  return x |> conv(mid) |> conv(c)\n}\n".to_string()
        + &net("    y = squeeze(x, 32)");
    let g = graph(&spec);
    assert_eq!(shape(&g, "y.conv")[0], 8);
}

#[test]
fn a_one_channel_mask_broadcasts_over_channels() {
    let g = graph(&net("    f = conv(x, 16)\n    m = x |> conv(1) |> sigmoid\n    y = f * (1 + m)"));
    assert_eq!(shape(&g, "y.mul"), [16, 32, 32]);
    assert_eq!(g.node("y.affine").map(|n| n.op.clone()), Some(Op::Affine { scale: 1.0, shift: 1.0 }));
}

#[test]
fn ceil_mode_pooling_follows_pytorch() {
    // 112 -> 56 with 3/2 ceil; a 2/2 ceil window on 5 keeps the partial one.
    let spec = "net t() {\n  input x: [3, 112, 112]\n  a = maxpool(x, 3, stride = 2, ceil = true)\n  b = maxpool(x |> maxpool(2), 2, stride = 2, ceil = true)\n  y = avgpool(a, 3, stride = 2, pad = 1)\n  return y\n}";
    let g = graph(spec);
    assert_eq!(shape(&g, "a"), [3, 56, 56]);
    assert_eq!(shape(&g, "b.maxpool_1"), [3, 28, 28]);
    assert_eq!(shape(&g, "y"), [3, 28, 28]);
    let odd = graph("net t() {\n  input x: [3, 5, 5]\n  y = maxpool(x, 2, ceil = true)\n  return y\n}");
    assert_eq!(shape(&odd, "y"), [3, 3, 3]);
}

#[test]
fn dilation_keeps_the_size_with_same_padding_and_widens_the_receptive_field() {
    let g = graph(&net("    a = conv(x, 8, 3, pad = same)\n    y = conv(a, 8, 3, pad = same, dilation = 2)"));
    assert_eq!(shape(&g, "y"), [8, 32, 32]);
    assert_eq!(g.node("a").map(|n| n.receptive_field.size), Some(3.0));
    assert_eq!(g.node("y").map(|n| n.receptive_field.size), Some(7.0));
}

#[test]
fn upsample_to_the_same_size_adds_no_node() {
    let g = graph(&net("    y = upsample(x, like = x, mode = bilinear)"));
    assert_eq!(g.nodes.len(), 1);
    let g = graph(&net("    s = maxpool(x, 2)\n    y = upsample(s, like = x, mode = bilinear, align_corners = true)"));
    assert_eq!(shape(&g, "y"), [3, 32, 32]);
}

#[test]
fn set_overrides_net_parameters_and_rejects_unknown_ones() {
    let spec = net("    y = conv(x, 64 * width)");
    let set = |k: &str, v: f64| compile_source(Path::new("t.net"), spec.clone(), &[(k.to_string(), v)]);
    assert_eq!(set("width", 0.5).map(|c| c.graph.nodes[1].shape[0]).ok(), Some(32));
    let e = set("depth", 2.0).expect_err("unknown parameter");
    assert!(
        e.render().contains("error[E0108]: `--set depth=...`: net `t` has no parameter `depth`; it has width"),
        "{}",
        e.render()
    );
}

#[test]
fn front_matter_is_typed_and_profiles_are_kept() {
    let spec = "+++\n[train]\nepochs = 3\naugment = [\"crop:4\", \"hflip\"]\n[profile.quick]\nepochs = 1\nset = { width = 0.25 }\n+++\n".to_string() + &net("    y = relu(x)");
    let c = compile_source(Path::new("t.net"), spec, &[]).expect("compiles");
    assert_eq!(c.recipe.train.epochs, 3);
    assert_eq!(c.recipe.profile["quick"].set["width"], 0.25);
    assert_eq!(c.recipe.train.augment, [netc::recipe::Augment::Crop { pad: 4 }, netc::recipe::Augment::HFlip]);
}

#[test]
fn front_matter_errors_point_at_the_spec_line() {
    let e = errors(&("+++\n[train]\nepochz = 3\n+++\n".to_string() + &net("    y = relu(x)")));
    assert!(e.contains("--> tests/inline.net:3:1"), "{e}");
    assert!(e.contains("unknown field `epochz`"), "{e}");
}

#[test]
fn every_error_of_a_file_is_reported_in_one_pass() {
    let e = errors(&net("    a = conv(x, 0)\n    b = relux(x)\n    y = concat(x, maxpool(x, 2))"));
    assert!(e.contains("E0202") && e.contains("E0103") && e.contains("E0201"), "{e}");
    assert!(e.ends_with("3 errors\n"), "{e}");
}

#[test]
fn one_mistake_in_a_block_is_reported_once_however_often_it_is_called() {
    let spec = "block bad(x) {\n  return x |> conv(8, 64)\n}\n".to_string()
        + &net("    a = bad(x)\n    b = bad(x)\n    y = bad(x)");
    let e = errors(&spec);
    assert!(e.ends_with("\n1 error\n"), "{e}");
    assert!(e.contains("note: in block `bad` called at tests/inline.net:6:9"), "{e}");
}

#[test]
fn a_recursive_block_is_an_error_not_a_stack_overflow() {
    let spec = "block f(x) {\n  return g(x)\n}\nblock g(x) {\n  return f(x)\n}\n".to_string() + &net("    y = f(x)");
    assert!(errors(&spec).contains("error[E0107]: block `f` calls itself"));
}

#[test]
fn unknown_names_suggest_the_closest_one() {
    let e = errors(&net("    stem = conv(x, 8)\n    y = relu(stme)"));
    assert!(e.contains("unknown name `stme`") && e.contains("did you mean `stem`?"), "{e}");
}

#[test]
fn syntax_errors_say_what_was_expected() {
    let e = check("net t() {\n  input x: [3, 32, 32]\n  y = conv(x, 8\n  return y\n}");
    assert!(e.starts_with("error[E0001]: expected"), "{e}");
    assert!(e.contains("--> tests/inline.net:4:3"), "{e}");
}

#[test]
fn independent_syntax_errors_are_all_reported_but_not_past_an_open_bracket() {
    let e = errors(&net("    a = conv(x, 8,, 3)\n    b = relu(x) * * 2\n    y = conv(a 8)"));
    assert!(e.ends_with("3 errors\n"), "{e}");
    let e = errors(&net("    a = conv(x, 8\n    b = relu(a\n    y = conv(b 8)"));
    assert!(e.ends_with("\n1 error\n"), "{e}");
}
