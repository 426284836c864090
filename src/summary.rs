//! Human- and tool-readable views of a [`Graph`]: a torchinfo-like table and
//! Graphviz. (`--format json` is the Graph itself, through serde.)

use std::fmt::Write as _;

use crate::compile::{fmt_num, fmt_shape};
use crate::graph::{Graph, Node, Op, UpsampleMode};

/// One row per node: name, op with its settings, output shape, parameters,
/// multiply-adds, receptive field; then totals and the probes.
pub fn table(graph: &Graph) -> String {
    let args: Vec<String> = graph.args.iter().map(|(k, v)| format!("{k} = {}", fmt_num(*v))).collect();
    let mut out = format!("net {}({})\n", graph.name, args.join(", "));
    let rows: Vec<[String; 6]> = graph
        .nodes
        .iter()
        .map(|n| {
            [
                n.name.clone(),
                describe(n),
                fmt_shape(&n.shape),
                group(n.param_count()),
                group(n.macs),
                fmt_num(n.receptive_field.size.round()),
            ]
        })
        .collect();
    let header = ["name", "op", "output", "params", "mult-adds", "rf"];
    let mut width = header.map(str::len);
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(width).enumerate() {
            // Names and ops read left to right; numbers line up on the right.
            if i < 2 {
                let _ = write!(s, "{cell:<w$}  ");
            } else {
                let _ = write!(s, "{cell:>w$}  ");
            }
        }
        s.trim_end().to_string() + "\n"
    };
    out += &line(header);
    out += &format!("{}\n", "-".repeat(width.iter().sum::<usize>() + 2 * (width.len() - 1)));
    for r in &rows {
        out += &line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]);
    }
    let params = graph.total_params();
    let _ = writeln!(
        out,
        "\ninput {}, output {} from `{}`",
        fmt_shape(graph.input_shape()),
        fmt_shape(&graph.nodes[graph.output].shape),
        graph.nodes[graph.output].name
    );
    let _ = writeln!(
        out,
        "{} nodes, {} parameters ({:.1} MiB as f32)",
        graph.nodes.len(),
        group(params),
        params as f64 * 4.0 / (1 << 20) as f64
    );
    match graph.total_macs() {
        u64::MAX => out += "more multiply-adds per image than 64 bits count (over 18.4 E)\n",
        macs => _ = writeln!(out, "{} multiply-adds per image ({})", group(macs), si(macs)),
    }
    for p in &graph.probes {
        let n = &graph.nodes[p.node];
        let _ = writeln!(out, "probe {} = {} {}", p.name, n.name, fmt_shape(&n.shape));
    }
    out
}

/// The op and its settings, compactly: `conv 3x3/2 p1 d2 g4 -bias`.
pub fn describe(n: &Node) -> String {
    match &n.op {
        Op::Conv { kernel, stride, padding, dilation, groups, bias, .. } => {
            let mut s = format!("conv {kernel}x{kernel}/{stride}");
            if *padding > 0 {
                let _ = write!(s, " p{padding}");
            }
            if *dilation > 1 {
                let _ = write!(s, " d{dilation}");
            }
            if *groups > 1 {
                let _ = write!(s, " g{groups}");
            }
            if !bias {
                s += " nobias";
            }
            s
        }
        Op::MaxPool { kernel, stride, padding, ceil_mode } | Op::AvgPool { kernel, stride, padding, ceil_mode } => {
            let mut s = format!("{} {kernel}x{kernel}/{stride}", n.op.kind());
            if *padding > 0 {
                let _ = write!(s, " p{padding}");
            }
            if *ceil_mode {
                s += " ceil";
            }
            s
        }
        Op::BatchNorm { eps, .. } if *eps != 1e-5 => format!("bn eps={eps}"),
        Op::Upsample { mode: UpsampleMode::Nearest, .. } => "upsample nearest".to_string(),
        Op::Upsample { mode: UpsampleMode::Bilinear { align_corners }, .. } => {
            format!("upsample bilinear{}", if *align_corners { " aligned" } else { "" })
        }
        Op::Dropout { p } => format!("dropout {p}"),
        Op::Affine { scale, shift } => format!("affine {}x{:+}", fmt_num(*scale), shift),
        Op::Input => "input".to_string(),
        Op::Concat => format!("concat {}", n.inputs.len()),
        op => op.kind().to_string(),
    }
}

/// The Graph IR as JSON, with its totals up front for scripts.
pub fn json(graph: &Graph) -> String {
    #[derive(serde::Serialize)]
    struct WithTotals<'a> {
        total_params: u64,
        total_macs: u64,
        #[serde(flatten)]
        graph: &'a Graph,
    }
    let view = WithTotals { total_params: graph.total_params(), total_macs: graph.total_macs(), graph };
    serde_json::to_string_pretty(&view).expect("a graph always serialises") + "\n"
}

/// Graphviz: one box per node, labelled with name, op and shape; probes in
/// a different colour.
pub fn dot(graph: &Graph) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\", fontsize=10];\n",
        graph.name
    );
    for (i, n) in graph.nodes.iter().enumerate() {
        let probes: Vec<&str> = graph.probes.iter().filter(|p| p.node == i).map(|p| p.name.as_str()).collect();
        let mut label = format!("{}\\n{}\\n{}", n.name, describe(n), fmt_shape(&n.shape));
        let mut style = String::new();
        if !probes.is_empty() {
            let _ = write!(label, "\\nprobe {}", probes.join(", "));
            style = ", style=filled, fillcolor=\"#ffd27f\"".to_string();
        }
        let _ = writeln!(out, "  n{i} [label=\"{}\"{style}];", label.replace('"', "\\\""));
        for input in &n.inputs {
            let _ = writeln!(out, "  n{input} -> n{i};");
        }
    }
    out + "}\n"
}

/// 6166250 -> "6,166,250"; a count that saturated at `u64::MAX` (the IR's
/// totals do, `graph::totals`) gets a "+".
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n == u64::MAX {
        out.push('+');
    }
    out
}

/// 1521756160 -> "1.52 G".
pub fn si(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.2} G", n / 1e9),
        n if n >= 1e6 => format!("{:.2} M", n / 1e6),
        n if n >= 1e3 => format!("{:.2} K", n / 1e3),
        n => format!("{n}"),
    }
}
