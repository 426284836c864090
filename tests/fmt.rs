//! `netc fmt`: each spec in `tests/fmt/` formats to its snapshot in
//! `snapshots/fmt/`; the shipped specs are already formatted; formatting
//! twice changes nothing more; and a formatted spec compiles to the same
//! Graph IR as the original, over the fixtures and the fuzz corpus. The
//! command's exit codes and in-place rewriting are checked on the binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::generate::{Rng, Writer, mutate, seeds};

fn fmt(text: &str) -> String {
    netc::fmt::format_source(text).unwrap_or_else(|e| panic!("does not format: {e:?}\n{text}"))
}

/// The Graph IR as JSON, or the codes of the errors (their messages quote
/// the source, whose layout is what changes).
fn meaning(path: &Path, text: &str) -> Result<String, Vec<&'static str>> {
    match netc::compile::compile_source(path, text.to_string(), &[]) {
        Ok(c) => Ok(netc::summary::json(&c.graph)),
        Err(e) => Err(e.diagnostics.iter().map(|d| d.code.as_str()).collect()),
    }
}

/// `fmt(x)` is a fixed point and means what `x` means.
fn assert_formatting_keeps_meaning(path: &Path, text: &str) -> String {
    let once = fmt(text);
    assert_eq!(fmt(&once), once, "formatting {} again changes it", path.display());
    assert_eq!(meaning(path, &once), meaning(path, text), "formatting {} changes what it means", path.display());
    once
}

#[test]
fn every_fixture_formats_to_its_snapshot_and_compiles_as_before() {
    common::snapshots("fmt").bind(|| {
        insta::glob!("fmt", "*.net", |path| {
            let path = common::relative(path);
            let text = std::fs::read_to_string(&path).expect("readable fixture");
            let formatted = assert_formatting_keeps_meaning(&path, &text);
            assert!(meaning(&path, &text).is_ok(), "{} should compile", path.display());
            assert_ne!(formatted, text, "{} is already formatted: it tests nothing", path.display());
            insta::assert_snapshot!(formatted);
        });
    });
}

#[test]
fn every_shipped_spec_is_already_formatted() {
    let mut seen = 0;
    for dir in ["specs", "specs/lib"] {
        for entry in std::fs::read_dir(dir).expect("spec folder exists") {
            let path = entry.expect("readable").path();
            if path.extension().is_some_and(|e| e == "net") {
                let text = std::fs::read_to_string(&path).expect("readable spec");
                assert_eq!(fmt(&text), text, "{} is not formatted: run `netc fmt` on it", path.display());
                seen += 1;
            }
        }
    }
    assert!(seen >= 10, "only {seen} specs found");
}

#[test]
fn comments_survive_in_every_position() {
    let text = std::fs::read_to_string("tests/fmt/comments.net").expect("fixture");
    let formatted = fmt(&text);
    for line in text.lines() {
        if let Some(at) = line.find('#') {
            let comment = line[at..].trim_end();
            assert!(formatted.contains(comment), "lost `{comment}`:\n{formatted}");
        }
    }
}

#[test]
fn layout_rules_on_small_inputs() {
    let cases = [
        // Spacing around operators, `=`, `:`, `|>` and in argument lists.
        (
            "net n(a=1,b=-2){input x:[3,8,8]\nreturn x|>conv(a*2,k=3,pad=same)}",
            "net n(a = 1, b = -2) {\n    input x: [3, 8, 8]\n    return x |> conv(a * 2, k = 3, pad = same)\n}\n",
        ),
        // Unary and binary minus; nested parentheses.
        (
            "net n(){input x:[1,2,2]\ny=-(1- -x)*(2-3)\nreturn y}",
            "net n() {\n    input x: [1, 2, 2]\n    y = -(1 - -x) * (2 - 3)\n    return y\n}\n",
        ),
        // At most one blank line; none at the start or end of a body; one after a definition.
        (
            "\n\nuse \"a.net\"\n\n\n\nuse \"b.net\"\nblock b(x){\n\n\nreturn x\n\n\n}\nnet n(){\n\ninput x:[1,2,2]\n\n\n\nreturn x}\n\n\n",
            "use \"a.net\"\n\nuse \"b.net\"\nblock b(x) {\n    return x\n}\n\nnet n() {\n    input x: [1, 2, 2]\n\n    return x\n}\n",
        ),
        // A pipeline continued on new lines lines up under its first `|>`.
        (
            "net n(){input x:[1,2,2]\ny=x|>relu\n|>relu\n  |>relu\nreturn y}",
            "net n() {\n    input x: [1, 2, 2]\n    y = x |> relu\n          |> relu\n          |> relu\n    return y\n}\n",
        ),
        // Without a `|>` on the first line, continuation lines are indented one step.
        (
            "net n(){input x:[1,2,2]\ny=x\n|>relu\n|>relu\nreturn y}",
            "net n() {\n    input x: [1, 2, 2]\n    y = x\n        |> relu\n        |> relu\n    return y\n}\n",
        ),
        // A comment between statements may follow a blank line; inside one it may not.
        (
            "net n(){input x:[1,2,2]\n\n# a\ny=x\n\n# b\n|>relu\nreturn y}",
            "net n() {\n    input x: [1, 2, 2]\n\n    # a\n    y = x\n        # b\n        |> relu\n    return y\n}\n",
        ),
        // CRLF line ends and trailing blanks go; a final newline comes.
        (
            "net n() {\r\n  input x: [1, 2, 2]   \r\n  return x # done  \r\n}",
            "net n() {\n    input x: [1, 2, 2]\n    return x # done\n}\n",
        ),
        // `repeat` and probes.
        (
            "net n(){input x:[1,2,2]\nprobe   p=x\nprobe q = x|>repeat (2)relu\nreturn x}",
            "net n() {\n    input x: [1, 2, 2]\n    probe p = x\n    probe q = x |> repeat(2) relu\n    return x\n}\n",
        ),
        // Nothing to format.
        ("", ""),
        ("  \n\n", ""),
        ("# only a comment", "# only a comment\n"),
    ];
    for (input, want) in cases {
        assert_eq!(fmt(input), want, "formatting {input:?}");
        assert_eq!(fmt(want), want, "formatting the result of {input:?} again");
    }
}

#[test]
fn front_matter_is_kept_byte_for_byte() {
    let toml = "[train]\nepochs   =  3    \n\n  batch_size=32\t\r\n[data]\ndataset = \"synthetic\"  # a TOML comment\n";
    let text = format!("+++  \n{toml}+++ \t\n\n\nnet n(){{input x:[1,2,2]\nreturn x}}");
    let formatted = fmt(&text);
    assert!(formatted.starts_with(&format!("+++\n{toml}+++\n\nnet n() {{\n")), "{formatted}");
}

#[test]
fn a_byte_order_mark_is_kept_and_errors_point_into_the_text_given() {
    assert_eq!(
        fmt("\u{FEFF}net n(){input x:[1,2,2]\nreturn x}"),
        "\u{FEFF}net n() {\n    input x: [1, 2, 2]\n    return x\n}\n"
    );
    let errors = netc::fmt::format_source("\u{FEFF}net n() {\n    return x +\n}\n").expect_err("a syntax error");
    let loc = errors[0].loc.expect("located");
    assert_eq!(loc.file, 0);
    assert_eq!(&"\u{FEFF}net n() {\n    return x +\n}\n"[loc.span.start..loc.span.start + 1], "}");
}

#[test]
fn syntax_errors_are_returned_as_the_parser_reports_them() {
    let text = "net n() {\n    a = conv(x,\n    return a\n}\n";
    let from_fmt = netc::fmt::format_source(text).expect_err("a syntax error");
    let from_parse = netc::syntax::parse(0, text).expect_err("a syntax error");
    assert_eq!(from_fmt, from_parse);
}

#[test]
fn mutated_and_generated_specs_format_to_a_fixed_point_that_means_the_same() {
    let cases = std::env::var("NETC_FMT_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000);
    let seeds = seeds();
    let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B);
    let (mut formatted, mut compiled) = (0, 0);
    for case in 0..cases {
        let (path, text) = if case % 3 == 2 {
            (PathBuf::from("specs/generated.net"), Writer::spec(&mut rng))
        } else {
            let (path, text) = &seeds[rng.below(seeds.len())];
            (path.clone(), mutate(&mut rng, text))
        };
        let Ok(once) = netc::fmt::format_source(&text) else {
            // Refused: it must be a syntax error, as the parser says.
            assert!(netc::syntax::parse(0, &text).is_err(), "case {case}: a parsable spec was refused:\n{text}");
            continue;
        };
        formatted += 1;
        assert_eq!(fmt(&once), once, "case {case}: formatting twice differs:\n{text}");
        let before = meaning(&path, &text);
        compiled += usize::from(before.is_ok());
        assert_eq!(meaning(&path, &once), before, "case {case}: formatting changed the meaning of:\n{text}");
    }
    println!("{cases} specs: {formatted} formatted, {compiled} of them compiled");
    assert!(formatted >= cases / 3 && compiled >= cases / 20, "{formatted} formatted, {compiled} compiled");
}

fn netc(args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_netc"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("netc runs");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("stdin written");
    let out = child.wait_with_output().expect("netc ends");
    let text = |b: Vec<u8>| String::from_utf8(b).expect("utf-8 output");
    (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
}

/// A fresh folder for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fmt").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

const MESSY: &str = "net n(){input x:[1,2,2] # in\nreturn x}";
const TIDY: &str = "net n() {\n    input x: [1, 2, 2] # in\n    return x\n}\n";

#[test]
fn fmt_rewrites_files_in_place_and_names_those_that_changed() {
    let dir = scratch("rewrite");
    let (messy, tidy) = (dir.join("messy.net"), dir.join("tidy.net"));
    std::fs::write(&messy, MESSY).unwrap();
    std::fs::write(&tidy, TIDY).unwrap();
    let (code, out, err) = netc(&["fmt", messy.to_str().unwrap(), tidy.to_str().unwrap()], "");
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, format!("formatted: {}\n", messy.display()));
    assert_eq!(std::fs::read_to_string(&messy).unwrap(), TIDY);
    assert_eq!(std::fs::read_to_string(&tidy).unwrap(), TIDY);
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "temporary files left: {leftovers:?}");
}

#[test]
fn fmt_check_changes_nothing_and_exits_one_when_a_file_would_change() {
    let dir = scratch("check");
    let (messy, tidy) = (dir.join("messy.net"), dir.join("tidy.net"));
    std::fs::write(&messy, MESSY).unwrap();
    std::fs::write(&tidy, TIDY).unwrap();
    let (code, out, _) = netc(&["fmt", "--check", messy.to_str().unwrap(), tidy.to_str().unwrap()], "");
    assert_eq!(code, 1);
    assert_eq!(out, format!("would reformat: {}\n", messy.display()));
    assert_eq!(std::fs::read_to_string(&messy).unwrap(), MESSY);
    let (code, out, _) = netc(&["fmt", "--check", tidy.to_str().unwrap()], "");
    assert_eq!((code, out.as_str()), (0, ""));
}

#[test]
fn fmt_refuses_a_file_with_syntax_errors_as_check_does_and_leaves_it_untouched() {
    let dir = scratch("syntax");
    let (bad, messy) = (dir.join("bad.net"), dir.join("messy.net"));
    let broken = "net n() {\n  a = conv(x,\n  return a\n}\n";
    std::fs::write(&bad, broken).unwrap();
    std::fs::write(&messy, MESSY).unwrap();
    let (code, out, err) = netc(&["fmt", bad.to_str().unwrap(), messy.to_str().unwrap()], "");
    assert_eq!(code, 1);
    assert_eq!(std::fs::read_to_string(&bad).unwrap(), broken);
    let (_, _, check_err) = netc(&["check", bad.to_str().unwrap()], "");
    let diagnostics = check_err.lines().take_while(|l| !l.contains("spec failed")).collect::<Vec<_>>().join("\n");
    assert!(
        diagnostics.contains("error[E0001]") && err.contains(&diagnostics),
        "fmt printed:\n{err}\ncheck printed:\n{check_err}"
    );
    // The other file is still formatted.
    assert_eq!(out, format!("formatted: {}\n", messy.display()));
    assert_eq!(std::fs::read_to_string(&messy).unwrap(), TIDY);
}

#[test]
fn fmt_reports_a_missing_file_as_check_does_and_follows_symbolic_links() {
    let dir = scratch("links");
    let missing = dir.join("missing.net");
    let (code, _, err) = netc(&["fmt", missing.to_str().unwrap()], "");
    assert_eq!(code, 1);
    assert!(err.starts_with("error[E0003]: cannot read"), "{err}");
    let (target, link) = (dir.join("target.net"), dir.join("link.net"));
    std::fs::write(&target, MESSY).unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (code, _, _) = netc(&["fmt", link.to_str().unwrap()], "");
    assert_eq!(code, 0);
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced by a file");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), TIDY);
}

#[test]
fn fmt_dash_reads_stdin_and_writes_stdout() {
    assert_eq!(netc(&["fmt", "-"], MESSY), (0, TIDY.to_string(), String::new()));
    assert_eq!(netc(&["fmt", "--check", "-"], MESSY).0, 1);
    assert_eq!(netc(&["fmt", "--check", "-"], TIDY).0, 0);
    let (code, out, err) = netc(&["fmt", "-"], "net n( {");
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("error[E0001]") && err.contains("<stdin>:1:"), "{err}");
}

#[test]
fn the_shipped_specs_pass_fmt_check() {
    let mut args = vec!["fmt".to_string(), "--check".to_string()];
    for dir in ["specs", "specs/lib"] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "net") {
                args.push(path.display().to_string());
            }
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = netc(&args, "");
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
}

/// The shipped specs, with their text.
fn shipped() -> Vec<(PathBuf, String)> {
    seeds().into_iter().filter(|(path, _)| path.starts_with("specs")).collect()
}

/// Where the front matter of a spec ends (0 without one).
fn after_front_matter(text: &str) -> usize {
    if !text.starts_with("+++") {
        return 0;
    }
    text[3..].find("\n+++").map_or(0, |i| 3 + i + 4)
}

#[test]
fn spacing_within_lines_does_not_change_the_result() {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '"';
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    for (path, text) in shipped() {
        for _ in 0..20 {
            let start = after_front_matter(&text);
            let mut out = text[..start].to_string();
            for line in text[start..].split_inclusive('\n') {
                if line.contains('#') {
                    out.push_str(line); // an end-of-line comment keeps its distance from the start
                    continue;
                }
                let chars: Vec<char> = line.chars().collect();
                let mut i = 0;
                while i < chars.len() {
                    if chars[i] != ' ' {
                        out.push(chars[i]);
                        i += 1;
                        continue;
                    }
                    let end = (i..chars.len()).find(|j| chars[*j] != ' ').unwrap_or(chars.len());
                    let between_words = i > 0 && word(chars[i - 1]) && end < chars.len() && word(chars[end]);
                    let n = if between_words { 1 + rng.below(3) } else { rng.below(3) };
                    out.extend(std::iter::repeat_n(if rng.below(4) == 0 { '\t' } else { ' ' }, n));
                    i = end;
                }
            }
            assert_eq!(fmt(&out), text, "{} with other spacing formats differently:\n{out}", path.display());
        }
    }
}

#[test]
fn comments_between_any_two_tokens_are_kept_and_change_nothing_else() {
    let mut rng = Rng(0xFEED_FACE_CAFE_BEEF);
    for (path, text) in shipped() {
        let start = after_front_matter(&text);
        let spaces: Vec<usize> = text[start..]
            .match_indices(' ')
            .map(|(i, _)| start + i)
            .filter(|i| !text[..*i].rsplit('\n').next().is_some_and(|line| line.contains('#')))
            .collect();
        for case in 0..30 {
            let mut spec = text.clone();
            let mut at: Vec<usize> = (0..3).map(|_| spaces[rng.below(spaces.len())]).collect();
            at.sort_unstable();
            for (n, i) in at.iter().enumerate().rev() {
                spec.insert_str(*i, &format!(" # inserted {n}\n"));
            }
            let once = assert_formatting_keeps_meaning(&path, &spec);
            for n in 0..at.len() {
                assert!(once.contains(&format!("# inserted {n}\n")), "case {case}: comment {n} lost:\n{once}");
            }
        }
    }
}
