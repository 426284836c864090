//! Inputs far past every limit of the language: each is checked to the end
//! without a crash (a stack overflow aborts the whole test binary, so any
//! unbounded recursion fails here), and the ones that break a limit get one
//! located diagnostic that says which.
//!
//! The inputs are generated, so that their size is stated in the code.

use std::path::{Path, PathBuf};

use netc::compile::{Checked, check_file, compile_source};

/// A net around `body`, input `x` of [3, 8, 8], returning `y`.
fn net(body: &str) -> String {
    format!("net t() {{\n    input x: [3, 8, 8]\n{body}\n    return y |> gap |> linear(2)\n}}\n")
}

/// The rendered diagnostics of a spec that must fail, and their codes.
fn failure(text: String) -> (String, Vec<&'static str>) {
    match compile_source(Path::new("limits.net"), text, &[]) {
        Ok(_) => panic!("the spec compiled"),
        Err(e) => (e.render(), e.diagnostics.iter().map(|d| d.code.as_str()).collect()),
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("limits").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch folder");
    dir
}

#[test]
fn a_pipe_chain_of_twenty_thousand_stages_compiles() {
    let chain = " |> relu".repeat(20_000);
    let c = compile_source(Path::new("pipe.net"), net(&format!("    y = x{chain}")), &[]).expect("compiles");
    // Input, 20,000 ReLUs, gap, linear.
    assert_eq!(c.graph.nodes.len(), 20_003);
    assert_eq!(c.graph.nodes[20_000].name, "y.relu_19999");
}

#[test]
fn a_pipe_chain_past_the_node_limit_is_refused_at_its_line() {
    let chain = " |> relu".repeat(150_000);
    let (text, codes) = failure(net(&format!("    y = x{chain}")));
    assert_eq!(codes, ["E0202"], "{text}");
    assert!(text.contains("grows past 100000 nodes") && text.contains("limits.net:3:"), "{text}");
}

#[test]
fn deep_operator_chains_are_refused_where_they_pass_the_limit() {
    let sum = format!("    k = 1{}\n    y = x", " + 1".repeat(50_000));
    let negations = format!("    k = {}1\n    y = x", "- ".repeat(50_000));
    let product = format!("    y = x{}", " * 1".repeat(50_000));
    for body in [sum, negations, product] {
        let (text, codes) = failure(net(&body));
        assert_eq!(codes, ["E0001"], "{text}");
        assert!(text.contains("expression nested more than 1000 deep"), "{text}");
        // A line of 200,000 characters is shown as a window around the caret.
        let longest = text.lines().map(str::len).max().unwrap_or(0);
        assert!(longest < 200, "a rendered line of {longest} characters:\n{text}");
    }
}

#[test]
fn a_chain_just_under_the_depth_limit_compiles() {
    let body = format!("    k = 1{}\n    y = x |> conv(k, k = 1)", " + 0".repeat(990));
    compile_source(Path::new("sum.net"), net(&body), &[]).expect("compiles");
}

#[test]
fn brackets_past_the_nesting_limit_are_refused() {
    for (open, close) in [("(", ")"), ("[", "]")] {
        let body = format!("    k = {}1{}\n    y = x", open.repeat(10_000), close.repeat(10_000));
        let (text, codes) = failure(net(&body));
        assert_eq!(codes, ["E0001"], "{text}");
        assert!(text.contains("brackets nested more than 64 deep"), "{text}");
    }
}

#[test]
fn nested_repeats_stop_at_the_block_call_limit() {
    let text = "block inner(x) { return x |> relu }\n\
                block outer(x) { return x |> repeat(1000) inner }\n"
        .to_string()
        + &net("    y = x |> repeat(1000) outer");
    let (text, codes) = failure(text);
    assert_eq!(codes, ["E0202"], "{text}");
}

#[test]
fn blocks_nested_in_deep_expressions_in_nested_blocks_compile() {
    // Each of 60 blocks calls the next at the bottom of a 900-deep sum:
    // 54,000 levels of evaluation, which the compiler's stack must survive.
    let mut text = String::from("block b60(x) { return x |> relu }\n");
    for i in (0..60).rev() {
        let sum = " + 0".repeat(900);
        text += &format!("block b{i}(x) {{\n    k = 1{sum}\n    return x |> b{}\n}}\n", i + 1);
    }
    text += &net("    y = x |> b0");
    compile_source(Path::new("nested.net"), text, &[]).expect("compiles");
}

#[test]
fn a_chain_of_five_thousand_used_files_is_checked() {
    let dir = scratch("use_chain");
    let n = 5000;
    for i in 0..n {
        let next = if i + 1 < n { format!("use \"c{}.net\"\n", i + 1) } else { String::new() };
        std::fs::write(dir.join(format!("c{i}.net")), format!("{next}block b{i}(x) {{ return x |> relu }}\n"))
            .expect("write");
    }
    let root = dir.join("root.net");
    std::fs::write(&root, format!("use \"c0.net\"\n{}", net(&format!("    y = x |> b{}", n - 1)))).expect("write");
    if let Err(e) = check_file(&root) {
        panic!("{}", e.render());
    }
    // Closing the chain into a cycle is found, and named from where it closes.
    std::fs::write(
        dir.join(format!("c{}.net", n - 1)),
        format!("use \"c0.net\"\nblock b{}(x) {{ return x }}\n", n - 1),
    )
    .expect("write");
    let e = check_file(&root).expect_err("a cycle");
    assert_eq!(e.diagnostics.iter().map(|d| d.code.as_str()).collect::<Vec<_>>(), ["E0004"]);
}

#[test]
fn a_file_of_three_megabytes_is_checked() {
    let body: String = (0..99_000).map(|i| format!("    y{i} = x |> relu\n")).collect();
    let text = net(&format!("{body}    y = y98999"));
    assert!(text.len() > 2_000_000);
    compile_source(Path::new("big.net"), text, &[]).expect("compiles");
}

#[test]
fn syntax_errors_at_the_end_of_a_large_file_are_reported() {
    let good: String = (0..90_000).map(|i| format!("    y{i} = x |> relu\n")).collect();
    let bad: String = (0..30).map(|i| format!("    z{i} = x |> relu @\n")).collect();
    let (text, codes) = failure(net(&format!("{good}{bad}    y = x")));
    assert!(!codes.is_empty() && codes.len() <= 20 && codes.iter().all(|c| *c == "E0001"), "{codes:?}");
    assert!(text.contains("found `@`"), "{text}");
}

#[test]
fn deeply_nested_front_matter_is_refused() {
    let text = format!("+++\n[train]\nseed = {}{}\n+++\n{}", "[".repeat(5000), "]".repeat(5000), net("    y = x"));
    let (text, codes) = failure(text);
    assert_eq!(codes, ["E0001"], "{text}");
}

#[test]
fn invalid_utf8_is_reported_at_its_line_and_column() {
    let dir = scratch("encoding");
    let spec = dir.join("latin1.net");
    let mut bytes = net("    y = x |> relu # caf").into_bytes();
    let at = bytes.iter().position(|&b| b == b'#').expect("a comment") + 5;
    bytes.insert(at, 0xE9);
    std::fs::write(&spec, &bytes).expect("write");
    let e = check_file(&spec).expect_err("not UTF-8");
    let text = e.render();
    assert_eq!(e.diagnostics[0].code.as_str(), "E0006", "{text}");
    assert!(text.contains("byte 0xE9 is not UTF-8 text"), "{text}");
    assert!(text.contains("latin1.net:3:24"), "{text}");
    // The same in a `use`d file names that file.
    let root = dir.join("root.net");
    std::fs::write(&root, format!("use \"latin1.net\"\n{}", net("    y = x"))).expect("write");
    let text = check_file(&root).expect_err("not UTF-8").render();
    assert!(text.contains("latin1.net:3:24") && text.contains("0xE9"), "{text}");
}

#[test]
fn a_nul_byte_and_an_inner_byte_order_mark_are_located() {
    for (inserted, message) in [("\0", "a NUL byte"), ("\u{FEFF}", "a byte order mark")] {
        let (text, codes) = failure(net(&format!("    y = x |> relu{inserted}")));
        assert_eq!(codes, ["E0006"], "{text}");
        assert!(text.contains(message) && text.contains("limits.net:3:18"), "{text}");
    }
}

#[test]
fn a_byte_order_mark_at_the_start_is_skipped() {
    let dir = scratch("bom");
    let spec = dir.join("bom.net");
    std::fs::write(&spec, format!("\u{FEFF}{}", net("    y = x |> relu oops"))).expect("write");
    let text = check_file(&spec).expect_err("a syntax error").render();
    // Columns count from the first character the user sees.
    assert!(text.contains("bom.net:3:19"), "{text}");
    std::fs::write(&spec, format!("\u{FEFF}{}", net("    y = x |> relu"))).expect("write");
    assert!(matches!(check_file(&spec), Ok(Checked::Net(_))));
}

#[test]
fn a_device_or_pipe_is_refused_as_a_spec_or_a_use() {
    // `/dev/zero` never ends: reading it would fill memory.
    let e = check_file(Path::new("/dev/zero")).expect_err("not a spec");
    assert!(e.render().contains("not a regular file"), "{}", e.render());
    let (text, codes) = failure(format!("use \"/dev/zero\"\n{}", net("    y = x")));
    assert_eq!(codes, ["E0003"], "{text}");
    assert!(text.contains("/dev/zero") && text.contains("not a regular file"), "{text}");
}

#[test]
fn a_net_too_large_to_count_in_64_bits_compiles_with_its_totals_saturated() {
    // Each of the two convolutions has about 1.6e20 multiply-adds, past
    // u64's 1.8e19: the totals must neither wrap nor overflow.
    let text = "net huge() {\n    input x: [3, 65536, 65536]\n    \
                y = x |> conv(65536, 3, pad = same) |> conv(65536, 3, pad = same) |> gap |> linear(10)\n    \
                return y\n}\n";
    let c = compile_source(Path::new("huge.net"), text.to_string(), &[]).expect("compiles");
    assert_eq!(c.graph.total_macs(), u64::MAX);
    assert_eq!(c.graph.total_params(), 38_657_261_578);
    let table = netc::summary::table(&c.graph);
    assert!(table.contains("more multiply-adds per image than 64 bits count"), "{table}");

    // A kernel of 65,536 x 65,536 over 65,536 channels into 65,536 has
    // 2^64 weights, one more than u64 holds.
    let text = text
        .replace("conv(65536, 3, pad = same) |> conv(65536, 3, pad = same)", "conv(65536, 1) |> conv(65536, 65536)");
    let c = compile_source(Path::new("huge.net"), text, &[]).expect("compiles");
    assert_eq!(c.graph.total_params(), u64::MAX);
    let table = netc::summary::table(&c.graph);
    assert!(table.contains("18,446,744,073,709,551,615+ parameters"), "{table}");
}
