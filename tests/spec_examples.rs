//! The executable part of `ir-spec/`.
//!
//! Two promises of the specification are checked here, so the pages cannot drift from the code:
//!
//! - **Every ```` ```sir ```` block in `ir-spec/` is a complete, valid graph.** Each one must parse,
//!   pass the verifier, print and re-parse to the same text (and an equal graph), and run in the
//!   reference interpreter on seeded random inputs.
//! - **Every op has a page and every page describes its op exactly.** The page set matches
//!   `Op::NAMES`; each page has the template's sections in order; its Inputs/Outputs lists name the
//!   op's inputs and outputs with the right optional/variadic markers; and its Attributes table has
//!   exactly the attributes of the `define_ops!` table in `crates/sinter-ir/src/op.rs`, with the same
//!   types and defaults. Names and types come from reading `op.rs` at test time (the reader is itself
//!   checked against `Op::NAMES` and `Op::input_names`); defaults are checked through
//!   `Op::from_attrs`, so a page default that differs from the real one fails.

use sinter_ir::text::{graphs_equal, parse_graph, print_graph, ParseOptions, PrintOptions};
use sinter_ir::{verify, AttrValue, Op, OpAttrError, Tensor};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Seeds for the random inputs each example runs on; two, so that a value that only works for one
/// draw is noticed.
const SEEDS: [u64; 2] = [1, 2];

/// The sections of an op page, in order.
const OP_PAGE_SECTIONS: [&str; 7] = [
    "Inputs",
    "Outputs",
    "Attributes",
    "Semantics",
    "Shape rule",
    "ONNX mapping",
    "Example",
];

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every `.md` file under `dir`, recursively, sorted by path.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = fs::read_dir(&current)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", current.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// One fenced ```` ```sir ```` block of a markdown file.
struct SirBlock {
    file: PathBuf,
    /// 0-based index among the file's `sir` blocks.
    block_idx: usize,
    /// 1-based line of the opening fence.
    line: usize,
    src: String,
}

impl SirBlock {
    fn describe(&self) -> String {
        format!(
            "{}:{} (sir block #{})",
            self.file
                .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap_or(&self.file)
                .display(),
            self.line,
            self.block_idx
        )
    }
}

/// The `sir` blocks of one markdown text. A block that is never closed is an error.
fn sir_blocks(file: &Path, text: &str) -> Result<Vec<SirBlock>, String> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (line_idx, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        match &mut open {
            None if trimmed == "```sir" => open = Some((line_idx + 1, String::new())),
            None => {}
            Some(_) if trimmed == "```" => {
                let (line, src) = open.take().expect("a block is open");
                blocks.push(SirBlock {
                    file: file.to_path_buf(),
                    block_idx: blocks.len(),
                    line,
                    src,
                });
            }
            Some((_, src)) => {
                src.push_str(line);
                src.push('\n');
            }
        }
    }
    match open {
        Some((line, _)) => Err(format!(
            "{}:{line}: ```sir block is never closed",
            file.display()
        )),
        None => Ok(blocks),
    }
}

/// Parses, verifies, round-trips and runs one example. Returns a description of the first failure.
fn check_example(block: &SirBlock) -> Result<(), String> {
    let options = ParseOptions::default();
    let graph = parse_graph(&block.src, &options)
        .map_err(|e| format!("does not parse:\n{}", e.render(&block.src)))?;
    verify(&graph).map_err(|errors| {
        let listed: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
        format!("fails verification:\n{}", listed.join("\n"))
    })?;

    let printed = print_graph(&graph, &PrintOptions::default());
    let reparsed = parse_graph(&printed, &options).map_err(|e| {
        format!(
            "its printed form does not parse:\n{}\n--- printed\n{printed}",
            e.render(&printed)
        )
    })?;
    let reprinted = print_graph(&reparsed, &PrintOptions::default());
    if reprinted != printed {
        return Err(format!(
            "printing is not stable across a round trip:\n--- printed\n{printed}--- re-printed\n{reprinted}"
        ));
    }
    if !graphs_equal(&graph, &reparsed) {
        return Err(format!(
            "re-parsing the printed text gives a different graph:\n--- printed\n{printed}"
        ));
    }

    for seed in SEEDS {
        let inputs = sinter_ref::random::random_inputs(&graph, seed, &HashMap::new());
        let named: Vec<(&str, Tensor)> = inputs
            .iter()
            .map(|(name, tensor)| (name.as_str(), tensor.clone()))
            .collect();
        let outputs = sinter_ref::run(&graph, &named)
            .map_err(|e| format!("sinter-ref fails on random inputs (seed {seed}): {e}"))?;
        if outputs.len() != graph.outputs().len() {
            return Err(format!(
                "sinter-ref returned {} outputs, the graph declares {}",
                outputs.len(),
                graph.outputs().len()
            ));
        }
    }
    Ok(())
}

#[test]
fn every_sir_block_parses_verifies_round_trips_and_runs() {
    let mut blocks = Vec::new();
    let mut failures = Vec::new();
    for file in markdown_files(&repo_path("ir-spec")) {
        match sir_blocks(&file, &read(&file)) {
            Ok(found) => blocks.extend(found),
            Err(message) => failures.push(message),
        }
    }
    // Every op page has an example, so fewer blocks than ops means the walk missed files.
    assert!(
        blocks.len() >= Op::NAMES.len(),
        "found only {} sir blocks in ir-spec/ for {} ops",
        blocks.len(),
        Op::NAMES.len()
    );
    for block in &blocks {
        if let Err(message) = check_example(block) {
            failures.push(format!("{}: {message}", block.describe()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} spec examples fail:\n\n{}",
        failures.len(),
        blocks.len(),
        failures.join("\n\n")
    );
}

// ---- the op table of op.rs, read as text ----

/// One attribute of a `define_ops!` entry: `name: Type = default` (no `= default` when required).
#[derive(Debug)]
struct AttrDecl {
    name: String,
    /// The Rust type with whitespace removed (`Vec<i64>`, `Option<f32>`, `AutoPad`).
    ty: String,
    /// The default expression as written (`vec![]`, `AutoPad::NotSet`, `None`, `1e-5`).
    default: Option<String>,
}

/// One `define_ops!` entry: `Variant "name" [inputs] -> [outputs] { attrs }`.
#[derive(Debug)]
struct OpDecl {
    name: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    attrs: Vec<AttrDecl>,
}

fn without_whitespace(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// A small cursor over the `define_ops!` body.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn skip_whitespace(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn error(&self, expected: &str) -> String {
        let context: String = self.rest().chars().take(60).collect();
        format!("op.rs table: expected {expected} at `{context}`")
    }

    fn eat(&mut self, token: &str) -> Result<(), String> {
        self.skip_whitespace();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            Ok(())
        } else {
            Err(self.error(&format!("`{token}`")))
        }
    }

    fn ident(&mut self) -> Result<&'a str, String> {
        self.skip_whitespace();
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if len == 0 {
            return Err(self.error("an identifier"));
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    fn string_literal(&mut self) -> Result<&'a str, String> {
        self.eat("\"")?;
        let rest = self.rest();
        let len = rest
            .find('"')
            .ok_or_else(|| self.error("a closing quote"))?;
        self.pos += len + 1;
        Ok(&rest[..len])
    }

    /// The text between `open` and its matching `close`, nesting on every bracket kind.
    fn delimited(&mut self, open: char, close: char) -> Result<&'a str, String> {
        self.eat(&open.to_string())?;
        let start = self.pos;
        let mut depth = 0usize;
        for (offset, c) in self.rest().char_indices() {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' if depth > 0 => depth -= 1,
                c if c == close => {
                    self.pos = start + offset + 1;
                    return Ok(&self.text[start..start + offset]);
                }
                _ => {}
            }
        }
        Err(self.error(&format!("a closing `{close}`")))
    }

    fn string_list(&mut self) -> Result<Vec<String>, String> {
        let inner = self.delimited('[', ']')?;
        let mut items = Cursor {
            text: inner,
            pos: 0,
        };
        let mut out = Vec::new();
        loop {
            items.skip_whitespace();
            if items.rest().is_empty() {
                return Ok(out);
            }
            out.push(items.string_literal()?.to_string());
            items.skip_whitespace();
            if items.rest().starts_with(',') {
                items.pos += 1;
            }
        }
    }
}

/// Splits at `sep` where no bracket (including `<>` of generic types) is open.
fn split_top_level(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (idx, c) in text.char_indices() {
        match c {
            '(' | '[' | '{' | '<' => depth += 1,
            ')' | ']' | '}' | '>' => depth -= 1,
            c if c == sep && depth == 0 => {
                parts.push(&text[start..idx]);
                start = idx + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

fn parse_attr_decl(field: &str) -> Result<AttrDecl, String> {
    let (name, rest) = field
        .split_once(':')
        .ok_or_else(|| format!("op.rs table: attribute without a type: `{field}`"))?;
    let (ty, default) = match split_top_level(rest, '=').as_slice() {
        [ty] => (*ty, None),
        [ty, default] => (*ty, Some(default.trim().to_string())),
        _ => return Err(format!("op.rs table: cannot read attribute `{field}`")),
    };
    Ok(AttrDecl {
        name: name.trim().to_string(),
        ty: without_whitespace(ty),
        default,
    })
}

/// Reads the `define_ops!` invocation of `op.rs`.
fn parse_op_table(source: &str) -> Result<Vec<OpDecl>, String> {
    // Comments (including the `///` docs of each variant) carry no table data.
    let code: String = source
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let start = code
        .find("define_ops! {")
        .ok_or("op.rs has no `define_ops! {` invocation")?;
    let mut outer = Cursor {
        text: &code,
        pos: start + "define_ops! ".len(),
    };
    let body = outer.delimited('{', '}')?;
    let mut cursor = Cursor { text: body, pos: 0 };
    let mut ops = Vec::new();
    loop {
        cursor.skip_whitespace();
        if cursor.rest().starts_with(',') {
            cursor.pos += 1;
            continue;
        }
        if cursor.rest().starts_with("#[") {
            cursor.pos += 1;
            cursor.delimited('[', ']')?;
            continue;
        }
        if cursor.rest().is_empty() {
            return Ok(ops);
        }
        cursor.ident()?;
        let name = cursor.string_literal()?.to_string();
        let inputs = cursor.string_list()?;
        cursor.eat("->")?;
        let outputs = cursor.string_list()?;
        let fields = cursor.delimited('{', '}')?;
        let attrs = split_top_level(fields, ',')
            .into_iter()
            .map(parse_attr_decl)
            .collect::<Result<Vec<_>, _>>()?;
        ops.push(OpDecl {
            name,
            inputs,
            outputs,
            attrs,
        });
    }
}

fn op_table() -> Vec<OpDecl> {
    let source = read(&repo_path("crates/sinter-ir/src/op.rs"));
    parse_op_table(&source).unwrap_or_else(|e| panic!("{e}"))
}

/// A value of type `ty` that `Op::from_attrs` accepts, for filling required attributes.
fn placeholder_attr(ty: &str) -> AttrValue {
    match ty {
        "i64" => AttrValue::Int(1),
        "f32" | "f64" => AttrValue::Float(1.0),
        "bool" => AttrValue::Bool(false),
        "Vec<i64>" => AttrValue::Ints(vec![1]),
        "Vec<f32>" => AttrValue::Floats(vec![1.0]),
        "DType" => AttrValue::Ident("f32".to_string()),
        "PoolKind" => AttrValue::Ident("max".to_string()),
        other => panic!("no placeholder for required attributes of type `{other}`; add one here"),
    }
}

/// The required attributes of `decl`, each with a placeholder value.
fn required_attrs(decl: &OpDecl) -> Vec<(String, AttrValue)> {
    decl.attrs
        .iter()
        .filter(|a| a.default.is_none())
        .map(|a| (a.name.clone(), placeholder_attr(&a.ty)))
        .collect()
}

/// The op of `decl` with required attributes set to placeholders and every other one defaulted.
fn op_with_defaults(decl: &OpDecl) -> Op {
    Op::from_attrs(&decl.name, required_attrs(decl))
        .unwrap_or_else(|e| panic!("cannot build `{}` from placeholders: {e}", decl.name))
}

#[test]
fn op_table_reader_agrees_with_the_op_api() {
    let table = op_table();
    let names: Vec<&str> = table.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        Op::NAMES,
        "the op.rs reader must see every op, in order"
    );
    for decl in &table {
        let op = op_with_defaults(decl);
        assert_eq!(op.name(), decl.name);
        assert_eq!(op.input_names(), decl.inputs, "inputs of `{}`", decl.name);
        assert_eq!(
            op.output_names(),
            decl.outputs,
            "outputs of `{}`",
            decl.name
        );
        // Every attribute read as required really is required.
        for attr in decl.attrs.iter().filter(|a| a.default.is_none()) {
            let without: Vec<(String, AttrValue)> = required_attrs(decl)
                .into_iter()
                .filter(|(name, _)| *name != attr.name)
                .collect();
            match Op::from_attrs(&decl.name, without) {
                Err(OpAttrError::MissingAttr { attr: missing, .. }) => {
                    assert_eq!(missing, attr.name, "op `{}`", decl.name)
                }
                other => panic!(
                    "`{}` built without its required `{}`: {other:?}",
                    decl.name, attr.name
                ),
            }
        }
    }
}

// ---- op pages ----

/// An op page split into its title and `## ` sections.
struct OpPage {
    title: String,
    /// Section heading and body, in order.
    sections: Vec<(String, String)>,
}

fn split_page(text: &str) -> OpPage {
    let mut title = String::new();
    let mut sections: Vec<(String, String)> = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        if !in_fence {
            if let Some(heading) = line.strip_prefix("## ") {
                sections.push((heading.trim().to_string(), String::new()));
                continue;
            }
            if let Some(heading) = line.strip_prefix("# ") {
                if title.is_empty() && sections.is_empty() {
                    title = heading.trim().to_string();
                    continue;
                }
            }
        }
        if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    OpPage { title, sections }
}

impl OpPage {
    fn section(&self, heading: &str) -> &str {
        self.sections
            .iter()
            .find(|(h, _)| h == heading)
            .map(|(_, body)| body.as_str())
            .unwrap_or("")
    }
}

/// The names of a page's Inputs or Outputs list, with the op.rs marker re-attached: `b?` for
/// `*(optional)*`, `inputs*` for `*(variadic...)*`.
fn listed_names(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|line| line.strip_prefix("- `"))
        .map(|rest| {
            let (name, after) = rest.split_once('`').unwrap_or((rest, ""));
            if after.starts_with(" *(optional)*") {
                format!("{name}?")
            } else if after.starts_with(" *(variadic") {
                format!("{name}*")
            } else {
                name.to_string()
            }
        })
        .collect()
}

/// One row of an Attributes table: name, type and default cells without backticks.
struct AttrRow {
    name: String,
    ty: String,
    default: String,
}

fn attr_rows(body: &str) -> Result<Vec<AttrRow>, String> {
    let mut rows = Vec::new();
    let table_lines: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|'))
        .collect();
    if table_lines.is_empty() {
        return Ok(rows);
    }
    let header: Vec<String> = cells(table_lines[0]);
    if header != ["name", "type", "default", "meaning"] {
        return Err(format!(
            "the attribute table header must be `| name | type | default | meaning |`, got {header:?}"
        ));
    }
    for line in table_lines.iter().skip(2) {
        let row = cells(line);
        let [name, ty, default, _meaning] = row.as_slice() else {
            return Err(format!("attribute row without 4 cells: `{line}`"));
        };
        rows.push(AttrRow {
            name: name.trim_matches('`').to_string(),
            ty: without_whitespace(ty.trim_matches('`')),
            default: default.trim_matches('`').to_string(),
        });
    }
    Ok(rows)
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

/// Parses a default cell into the generic attribute value of type `ty`.
fn default_cell_value(ty: &str, cell: &str) -> Result<AttrValue, String> {
    let list_items = |cell: &str| -> Result<Vec<String>, String> {
        let inner = cell
            .strip_prefix('[')
            .and_then(|c| c.strip_suffix(']'))
            .ok_or_else(|| format!("`{cell}` is not a list"))?;
        Ok(inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect())
    };
    let bad = |e: &dyn std::fmt::Display| format!("`{cell}` is not a `{ty}`: {e}");
    Ok(match ty {
        "i64" => AttrValue::Int(cell.parse().map_err(|e| bad(&e))?),
        "f32" | "f64" => AttrValue::Float(cell.parse().map_err(|e| bad(&e))?),
        "bool" => AttrValue::Bool(cell.parse().map_err(|e| bad(&e))?),
        "Vec<i64>" => AttrValue::Ints(
            list_items(cell)?
                .iter()
                .map(|s| s.parse().map_err(|e| bad(&e)))
                .collect::<Result<_, _>>()?,
        ),
        "Vec<f32>" => AttrValue::Floats(
            list_items(cell)?
                .iter()
                .map(|s| s.parse().map_err(|e| bad(&e)))
                .collect::<Result<_, _>>()?,
        ),
        // A list of enum values; the text format reads `[]` as an empty integer list.
        _ if ty.starts_with("Vec<") => {
            let items = list_items(cell)?;
            if items.is_empty() {
                AttrValue::Ints(Vec::new())
            } else {
                AttrValue::Idents(items)
            }
        }
        // Enums and dtypes are bare identifiers.
        _ => AttrValue::Ident(cell.to_string()),
    })
}

/// Checks one page against its op; returns every problem found.
fn check_op_page(decl: &OpDecl, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let page = split_page(text);
    if page.title != decl.name {
        problems.push(format!(
            "title is `# {}`, expected `# {}`",
            page.title, decl.name
        ));
    }
    let headings: Vec<&str> = page.sections.iter().map(|(h, _)| h.as_str()).collect();
    if headings != OP_PAGE_SECTIONS {
        problems.push(format!(
            "sections are {headings:?}, expected {OP_PAGE_SECTIONS:?}"
        ));
    }

    let op = op_with_defaults(decl);
    for (heading, expected) in [("Inputs", op.input_names()), ("Outputs", op.output_names())] {
        let body = page.section(heading);
        let listed = listed_names(body);
        if listed != expected {
            problems.push(format!(
                "{heading} lists {listed:?}, op.rs has {expected:?} (`?` = *(optional)*, `*` = *(variadic ...)*)"
            ));
        }
        if expected.is_empty() && body.trim() != "None." {
            problems.push(format!("{heading} of an op without any must say `None.`"));
        }
    }

    let attrs_body = page.section("Attributes");
    match attr_rows(attrs_body) {
        Err(message) => problems.push(message),
        Ok(rows) => {
            if decl.attrs.is_empty() && attrs_body.trim() != "None." {
                problems.push("Attributes of an op without any must say `None.`".to_string());
            }
            let row_names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
            let decl_names: Vec<&str> = decl.attrs.iter().map(|a| a.name.as_str()).collect();
            if row_names != decl_names {
                problems.push(format!(
                    "attribute table names {row_names:?}, op.rs declares {decl_names:?}"
                ));
            }
            for (row, attr) in rows.iter().zip(&decl.attrs) {
                if row.name != attr.name {
                    continue;
                }
                if row.ty != attr.ty {
                    problems.push(format!(
                        "attribute `{}` has type `{}` on the page, `{}` in op.rs",
                        attr.name, row.ty, attr.ty
                    ));
                }
                if let Err(message) = check_default(decl, attr, &row.default) {
                    problems.push(format!("attribute `{}`: {message}", attr.name));
                }
            }
        }
    }

    let example = page.section("Example");
    let n_blocks = example.lines().filter(|l| l.trim() == "```sir").count();
    if n_blocks != 1 {
        problems.push(format!(
            "the Example section must hold exactly one ```sir block, it has {n_blocks}"
        ));
    }
    if !example.contains(&format!("= {}(", decl.name)) {
        problems.push(format!("the example does not use `{}`", decl.name));
    }
    problems
}

/// Checks a page's default cell against op.rs: `required` and `absent` by the declaration, any
/// other value by building the op with it and comparing with the op built with defaults.
fn check_default(decl: &OpDecl, attr: &AttrDecl, cell: &str) -> Result<(), String> {
    match (attr.default.as_deref(), cell) {
        (None, "required") => return Ok(()),
        (None, _) => {
            return Err(format!(
                "is required in op.rs, the page says default `{cell}`"
            ))
        }
        (Some(_), "required") => {
            return Err("has a default in op.rs, the page says `required`".to_string())
        }
        (Some("None"), "absent") => return Ok(()),
        (Some(default), "absent") => {
            return Err(format!(
                "defaults to `{default}` in op.rs, the page says `absent`"
            ))
        }
        (Some("None"), _) => {
            return Err(format!(
                "defaults to absent (`None`) in op.rs, the page says `{cell}`"
            ))
        }
        (Some(_), _) => {}
    }
    let value = default_cell_value(&attr.ty, cell)?;
    let mut attrs = required_attrs(decl);
    attrs.push((attr.name.clone(), value));
    let with_page_default = Op::from_attrs(&decl.name, attrs)
        .map_err(|e| format!("the page default `{cell}` is rejected: {e}"))?;
    if with_page_default != op_with_defaults(decl) {
        return Err(format!(
            "the page default `{cell}` differs from op.rs's `{}`",
            attr.default.as_deref().unwrap_or("")
        ));
    }
    Ok(())
}

#[test]
fn every_op_has_exactly_one_page() {
    let ops_dir = repo_path("ir-spec/ops");
    let mut problems = Vec::new();
    for name in Op::NAMES {
        if !ops_dir.join(format!("{name}.md")).is_file() {
            problems.push(format!("op `{name}` has no page ir-spec/ops/{name}.md"));
        }
    }
    for file in markdown_files(&ops_dir) {
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if stem != "README" && !Op::NAMES.contains(&stem) {
            problems.push(format!("{} is not the page of any op", file.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn op_pages_match_the_op_table() {
    let mut report = String::new();
    for decl in op_table() {
        let path = repo_path(&format!("ir-spec/ops/{}.md", decl.name));
        let Ok(text) = fs::read_to_string(&path) else {
            // Reported by `every_op_has_exactly_one_page`.
            continue;
        };
        let problems = check_op_page(&decl, &text);
        if !problems.is_empty() {
            let _ = writeln!(report, "ir-spec/ops/{}.md:", decl.name);
            for problem in problems {
                let _ = writeln!(report, "  - {problem}");
            }
        }
    }
    assert!(report.is_empty(), "op pages disagree with op.rs:\n{report}");
}

#[test]
fn index_and_overview_link_every_op_page() {
    let index = read(&repo_path("ir-spec/ops/README.md"));
    let overview = read(&repo_path("ir-spec/overview.md"));
    let mut missing = Vec::new();
    for name in Op::NAMES {
        if !index.contains(&format!("]({name}.md)")) {
            missing.push(format!("ir-spec/ops/README.md does not link {name}.md"));
        }
        if !overview.contains(&format!("](ops/{name}.md)")) {
            missing.push(format!("ir-spec/overview.md does not link ops/{name}.md"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

// The checks above are only as good as their failure paths; these make sure a wrong page is caught.

fn decl_named(table: &[OpDecl], name: &str) -> usize {
    table
        .iter()
        .position(|d| d.name == name)
        .unwrap_or_else(|| panic!("op.rs declares `{name}`"))
}

#[test]
fn page_checks_catch_wrong_attribute_tables() {
    let table = op_table();
    let gemm = &table[decl_named(&table, "gemm")];
    let page = read(&repo_path("ir-spec/ops/gemm.md"));
    assert!(
        check_op_page(gemm, &page).is_empty(),
        "gemm's page is correct"
    );

    let wrong_default = page.replace("| `alpha` | `f32` | `1.0` |", "| `alpha` | `f32` | `2.0` |");
    let wrong_type = page.replace("| `trans_a` | `bool` |", "| `trans_a` | `i64` |");
    let missing_row: String = page
        .lines()
        .filter(|l| !l.starts_with("| `beta`"))
        .map(|l| format!("{l}\n"))
        .collect();
    let renamed = page.replace("| `trans_b` |", "| `transB` |");
    let not_optional = page.replace("- `c` *(optional)*", "- `c`");
    for (what, text) in [
        ("a wrong default", wrong_default),
        ("a wrong type", wrong_type),
        ("a missing attribute", missing_row),
        ("a renamed attribute", renamed),
        ("an unmarked optional input", not_optional),
    ] {
        assert_ne!(text, page, "the mutation for {what} must change the page");
        assert!(
            !check_op_page(gemm, &text).is_empty(),
            "{what} goes unnoticed"
        );
    }

    // `required` and `absent` defaults are checked against the declaration too.
    let clip = &table[decl_named(&table, "clip")];
    let clip_page = read(&repo_path("ir-spec/ops/clip.md"));
    assert!(
        check_op_page(clip, &clip_page).is_empty(),
        "clip's page is correct"
    );
    let clip_wrong = clip_page.replace(
        "| `min` | `Option<f64>` | `absent` |",
        "| `min` | `Option<f64>` | `0.0` |",
    );
    assert!(
        !check_op_page(clip, &clip_wrong).is_empty(),
        "a wrong `absent` goes unnoticed"
    );
    let cast = &table[decl_named(&table, "cast")];
    let cast_page = read(&repo_path("ir-spec/ops/cast.md"));
    let cast_wrong = cast_page.replace(
        "| `to` | `DType` | `required` |",
        "| `to` | `DType` | `f32` |",
    );
    assert!(
        !check_op_page(cast, &cast_wrong).is_empty(),
        "a wrong `required` goes unnoticed"
    );
}
