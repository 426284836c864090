//! The fuzz generators, shared by `tests/fuzz.rs` (no input panics) and
//! `tests/fmt.rs` (formatting keeps what a spec means): mutations of the
//! real and bad specs, and specs written from the grammar. Seeded, so that
//! a failure reproduces.

use std::path::PathBuf;

/// xorshift64*: small, seeded, good enough to pick mutations.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

const TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    "=",
    "|>",
    "+",
    "-",
    "*",
    "/",
    "\n",
    "+++",
    "#",
    "\"",
    "net",
    "block",
    "use",
    "input",
    "probe",
    "return",
    "repeat(3)",
    "repeat(0)",
    "conv",
    "concat",
    "upsample",
    "maxpool",
    "x",
    "same",
    "true",
    "0",
    "-1",
    "1e30",
    "0.5",
    "99999999",
    "like = x",
    "pad = same",
    ":",
    "é",
    "\u{0}",
    "[3, 32, 32]",
];

const NUMBERS: &[&str] = &["0", "-1", "1", "2", "7", "0.5", "1e9", "1e300", "100000", "3.5", "65536"];

/// Half the mutations keep the syntax (numbers and names swapped), so that
/// the name, type and shape checks see as much traffic as the parser.
pub fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let keep_syntax = rng.below(2) == 0;
    for _ in 0..1 + rng.below(3) {
        let len = chars.len();
        let at = rng.below(len + 1);
        let kind = if keep_syntax { 4 + 2 * rng.below(2) } else { rng.below(7) };
        match kind {
            0 => {
                let end = (at + 1 + rng.below(40)).min(len);
                chars.drain(at.min(end)..end);
            }
            1 => {
                let end = (at + 1 + rng.below(60)).min(len);
                let copy: Vec<char> = chars[at.min(end)..end].to_vec();
                let to = rng.below(len + 1);
                chars.splice(to..to, copy);
            }
            2 | 3 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                chars.splice(at..at, token.chars());
            }
            4 => {
                // Replace the next number with an extreme one.
                if let Some(start) = (at..len).find(|i| chars[*i].is_ascii_digit()) {
                    let end = (start..len).find(|i| !chars[*i].is_ascii_digit() && chars[*i] != '.').unwrap_or(len);
                    chars.splice(start..end, NUMBERS[rng.below(NUMBERS.len())].chars());
                }
            }
            6 => {
                // Replace the next name with another name of the same file.
                let s: String = chars.iter().collect();
                let names: Vec<&str> = s
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .filter(|w| w.starts_with(|c: char| c.is_alphabetic()))
                    .collect();
                if let Some(start) = (at..len).find(|i| chars[*i].is_alphabetic()) {
                    let end = (start..len).find(|i| !chars[*i].is_alphanumeric() && chars[*i] != '_').unwrap_or(len);
                    let name = names[rng.below(names.len())].to_string();
                    chars.splice(start..end, name.chars());
                }
            }
            _ => {
                // Swap two lines.
                let s: String = chars.iter().collect();
                let mut lines: Vec<&str> = s.lines().collect();
                if lines.len() > 1 {
                    let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
                    lines.swap(i, j);
                }
                chars = lines.join("\n").chars().collect();
            }
        }
    }
    chars.into_iter().collect()
}

pub fn seeds() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for dir in ["specs", "specs/lib", "tests/bad"] {
        for entry in std::fs::read_dir(dir).expect("seed folder exists") {
            let path = entry.expect("readable").path();
            if path.extension().is_some_and(|e| e == "net") {
                let text = std::fs::read_to_string(&path).expect("readable seed");
                out.push((path, text));
            }
        }
    }
    out.sort();
    out
}

/// Writes a random spec from the grammar. Names are tracked by kind, so that
/// most calls get a feature map where they need one and the result often
/// compiles; the rest is left to chance.
pub struct Writer<'r> {
    rng: &'r mut Rng,
    /// Feature maps and numbers in scope.
    tensors: Vec<String>,
    numbers: Vec<String>,
    /// Blocks defined so far: name and number of extra parameters.
    blocks: Vec<(String, usize)>,
    next: usize,
}

impl Writer<'_> {
    /// A new spec, drawn with `rng`.
    pub fn spec(rng: &mut Rng) -> String {
        Writer { rng, tensors: Vec::new(), numbers: Vec::new(), blocks: Vec::new(), next: 0 }.write()
    }

    fn write(mut self) -> String {
        let mut out = String::new();
        if self.chance(3) {
            out += &self.front_matter();
        }
        for _ in 0..self.rng.below(3) {
            out += &self.block();
        }
        out += &self.net();
        out
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.rng.below(one_in) == 0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.rng.below(items.len())]
    }

    /// One of `good`, or now and then one of `bad`: most specs should compile.
    fn mostly<'a>(&mut self, good: &[&'a str], bad: &[&'a str]) -> &'a str {
        if self.chance(25) { self.pick(bad) } else { self.pick(good) }
    }

    fn fresh(&mut self, stem: &str) -> String {
        self.next += 1;
        format!("{stem}{}", self.next)
    }

    fn front_matter(&mut self) -> String {
        let epochs = self.mostly(&["1", "200"], &["0", "-1", "2.5"]);
        let lr = self.mostly(&["0.1", "1e-3"], &["0", "\"fast\""]);
        let good = ["", "[probe]\naggregate = \"gradcam\"\n", "[profile.quick]\nset = { w = 2 }\n"];
        let extra = self.mostly(&good, &["[bogus]\n"]);
        format!("+++\n[train]\nepochs = {epochs}\noptimizer = {{ kind = \"sgd\", lr = {lr} }}\n{extra}+++\n")
    }

    fn block(&mut self) -> String {
        let name = self.fresh("blk");
        let extra = self.rng.below(3);
        let params: Vec<String> = (0..extra).map(|i| format!("p{i} = {}", 1 + self.rng.below(8))).collect();
        let saved = (std::mem::take(&mut self.tensors), std::mem::take(&mut self.numbers));
        self.tensors.push("x".into());
        self.numbers.extend((0..extra).map(|i| format!("p{i}")));
        let statements = 1 + self.rng.below(3);
        let body = self.statements(statements);
        let ret = self.tensor(2);
        (self.tensors, self.numbers) = saved;
        let head = std::iter::once("x".to_string()).chain(params).collect::<Vec<_>>().join(", ");
        self.blocks.push((name.clone(), extra));
        format!("block {name}({head}) {{\n{body}    return {ret}\n}}\n")
    }

    fn net(&mut self) -> String {
        let channels = self.pick(&["3", "1", "4"]);
        let size = self.mostly(&["8", "16", "32"], &["5", "1"]);
        self.tensors.push("x".into());
        self.numbers.push("w".into());
        let statements = 1 + self.rng.below(6);
        let body = self.statements(statements);
        let head = self.tensor(2);
        let classes = self.mostly(&["10", "2"], &["1", "0"]);
        let probe = if self.chance(2) { format!("    probe p = {}\n", self.tensor(1)) } else { String::new() };
        format!(
            "net gen(w = {}) {{\n    input x: [{channels}, {size}, {size}]\n{body}{probe}    \
             return {head} |> gap |> linear({classes})\n}}\n",
            self.pick(&["1", "0.5", "2"])
        )
    }

    fn statements(&mut self, n: usize) -> String {
        let mut out = String::new();
        for _ in 0..n {
            if self.chance(4) {
                let name = self.fresh("n");
                out += &format!("    {name} = {}\n", self.number(2));
                self.numbers.push(name);
            } else {
                let name = self.fresh("t");
                out += &format!("    {name} = {}\n", self.tensor(3));
                self.tensors.push(name);
            }
        }
        out
    }

    fn number(&mut self, depth: usize) -> String {
        if depth == 0 || self.chance(2) {
            return match self.rng.below(3) {
                0 if !self.numbers.is_empty() => self.numbers[self.rng.below(self.numbers.len())].clone(),
                1 => self.pick(&["0", "1", "2", "3", "0.5", "64", "1e9", "7"]).to_string(),
                _ => (1 + self.rng.below(16)).to_string(),
            };
        }
        let op = self.pick(&["+", "-", "*", "/"]);
        format!("({} {op} {})", self.number(depth - 1), self.number(depth - 1))
    }

    fn tensor(&mut self, depth: usize) -> String {
        let name = self.tensors[self.rng.below(self.tensors.len())].clone();
        if depth == 0 || self.chance(4) {
            return name;
        }
        match self.rng.below(8) {
            0 => format!("{} + {}", self.tensor(depth - 1), self.tensor(depth - 1)),
            1 => format!("{} * {}", self.tensor(depth - 1), self.pick(&["0.5", "2", "(1 + x)"])),
            2 => format!("concat({}, {})", self.tensor(depth - 1), self.tensor(depth - 1)),
            3 if !self.blocks.is_empty() => {
                let (block, extra) = self.blocks[self.rng.below(self.blocks.len())].clone();
                let args: String = (0..self.rng.below(extra + 1)).map(|_| format!(", {}", self.number(1))).collect();
                if self.chance(2) {
                    let n = self.mostly(&["1", "2", "3"], &["0", "1001"]);
                    format!(
                        "({} |> repeat({n}) {block}{})",
                        self.tensor(depth - 1),
                        if args.is_empty() { String::new() } else { format!("({})", &args[2..]) }
                    )
                } else {
                    format!("{block}({}{args})", self.tensor(depth - 1))
                }
            }
            _ => {
                let mut chain = self.tensor(depth - 1);
                for _ in 0..1 + self.rng.below(4) {
                    chain = format!("{chain} |> {}", self.op());
                }
                format!("({chain})")
            }
        }
    }

    /// One op as a pipe stage, with random arguments.
    fn op(&mut self) -> String {
        let c =
            if self.chance(4) { self.number(1) } else { self.mostly(&["4", "8", "2 * 4"], &["0", "-2"]).to_string() };
        match self.rng.below(11) {
            0 => {
                let k = self.pick(&["1", "3", "5", "2"]);
                let opts = [
                    ("stride", &["1", "2"][..]),
                    ("pad", &["0", "1", "same"][..]),
                    ("dilation", &["1", "2", "4"][..]),
                    ("groups", &["1", "1", "2"][..]),
                    ("bias", &["true", "false"][..]),
                ];
                let mut args = format!("conv({c}, {k}");
                for (key, values) in opts {
                    if self.chance(3) {
                        args += &format!(", {key} = {}", self.pick(values));
                    }
                }
                args + ")"
            }
            1 => "bn".into(),
            2 => "relu".into(),
            3 => "sigmoid".into(),
            4 | 5 => {
                let kind = self.pick(&["maxpool", "avgpool"]);
                let k = self.pick(&["2", "3", "1"]);
                let rest = self.mostly(
                    &["", ", stride = 1", ", ceil = true"],
                    &[", stride = 2, pad = 1", ", pad = 1, ceil = true"],
                );
                format!("{kind}({k}{rest})")
            }
            6 => {
                let how = self.mostly(&["scale = 2", "size = [4, 4]", "like = x"], &["scale = 0.5", "size = 0"]);
                let mode = self.pick(&[
                    "",
                    ", mode = bilinear",
                    ", mode = bilinear, align_corners = true",
                    ", mode = nearest",
                ]);
                format!("upsample({how}{mode})")
            }
            7 => format!("dropout({})", self.mostly(&["0.5", "0", "0.1"], &["1", "-1"])),
            8 => "gap".into(),
            9 => format!("conv({c}, 3, pad = same) |> bn |> relu"),
            _ => format!("conv({c})"),
        }
    }
}
