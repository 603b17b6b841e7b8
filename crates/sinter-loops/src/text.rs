//! The `.sloop` text format of the loop IR: a printer and a parser that round-trip exactly.
//!
//! This is what `sinter dump --stage loops` shows, so it is written for people first: loops read like
//! Rust `for` loops, indices like the affine sums they are (`b0[16*i0 + i1 + 3]`), and the common
//! dtypes need no annotation (a float literal is f32, an integer literal i64). The grammar is in
//! `ir-spec/loops.md`.
//!
//! Invariants the two halves keep between them:
//!
//! - **Round trip.** For every kernel whose ids are in range (every buffer, local and loop variable it
//!   names exists) and whose indices are normalized (which the verifier requires),
//!   `parse_kernel(print_kernel(k))` is structurally equal to `k` and prints to the same text. Ids are
//!   never renumbered. The parser normalizes every index ([`Index::normalized`]), so hand-written
//!   text may write terms in any order (`b1[8*i2 + i1]`); it prints back sorted by variable.
//!   Floats are bit-exact (`-0.0`, subnormals and NaN payloads included) by the rules of the graph
//!   format (`sinter_ir::write_f32`/`write_f64`).
//! - **Minimal, canonical headers.** A local's dtype is written on its `let`; only locals that no
//!   `let` declares get a `local vN: dtype` line, and `vars N` appears only when the kernel's
//!   `n_loop_vars` differs from one plus the largest loop variable a loop binds.
//! - **The parser builds, it does not check.** Types, scopes and bounds are the verifier's job
//!   (`verify.rs`); the parser only rejects what a [`Kernel`] cannot hold (an unknown dtype, an integer
//!   literal out of its dtype's range, a local with two dtypes, buffers out of order).
//! - **Programs print weights by content hash, not data.** [`parse_program`] therefore needs the
//!   weights from the caller and checks each against its dtype, shape and hash.

use crate::ir::*;
use crate::program::{BufferSource, KernelCall, Program, ProgramBuffer, ProgramBufferId};
use sinter_ir::{write_f32, write_f64, DType, ParseError, Tensor};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::{self, Write};

// ---------------------------------------------------------------------------------------------
// Printer
// ---------------------------------------------------------------------------------------------

/// Prints one kernel as `.sloop` text (ending with a newline).
pub fn print_kernel(kernel: &Kernel) -> String {
    let mut out = String::new();
    write_kernel(&mut out, kernel, 0, None);
    out
}

/// Prints a whole program: its buffers, each call with its kernel, and its outputs.
///
/// Weights are printed by dtype, shape and content hash ([`weight_hash`]), not by their data.
pub fn print_program(program: &Program) -> String {
    let mut out = String::from("program {\n");
    for (idx, buffer) in program.buffers.iter().enumerate() {
        let _ = write!(
            out,
            "  B{idx}: {}{} ",
            buffer.dtype,
            ShapeText(&buffer.shape)
        );
        match &buffer.source {
            BufferSource::Input { name } => {
                out.push_str("input ");
                write_name(&mut out, &buffer.name);
                if name != &buffer.name {
                    out.push_str(" graph_input ");
                    write_name(&mut out, name);
                }
            }
            BufferSource::Weight(tensor) => {
                out.push_str("weight ");
                write_name(&mut out, &buffer.name);
                let _ = write!(out, " hash 0x{:016x}", weight_hash(tensor));
            }
            BufferSource::Computed => {
                out.push_str("computed ");
                write_name(&mut out, &buffer.name);
            }
        }
        out.push('\n');
    }
    for call in &program.calls {
        write_kernel(&mut out, &call.kernel, 1, Some(&call.args));
    }
    for (name, buffer) in &program.outputs {
        out.push_str("  output ");
        write_name(&mut out, name);
        let _ = writeln!(out, " = {buffer}");
    }
    out.push_str("}\n");
    out
}

/// The content hash printed for a weight: 64-bit FNV-1a over the little-endian bytes of its elements
/// (bools as one byte 0/1). It identifies data in dumps and catches a wrong weights file in
/// [`parse_program`]; it is not a cryptographic hash.
pub fn weight_hash(tensor: &Tensor) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in tensor.data().to_le_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

impl fmt::Display for Kernel {
    /// The `.sloop` text of the kernel.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&print_kernel(self))
    }
}

impl fmt::Display for Program {
    /// The `.sloop` text of the program.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&print_program(self))
    }
}

/// The first line of `stmt` as printed, without indentation: `for i0 in 0..8 {`, `b1[i0] = ...`.
/// Error messages use it to point at a statement.
pub fn stmt_head(stmt: &Stmt) -> String {
    let mut out = String::new();
    match stmt {
        Stmt::Loop(lp) => {
            write_loop_head(&mut out, lp);
        }
        Stmt::If { cond, .. } => {
            out.push_str("if ");
            write_expr(&mut out, cond);
            out.push_str(" {");
        }
        _ => write_stmt(&mut out, stmt),
    }
    let line = out.lines().next().unwrap_or("").trim().to_string();
    // Keep messages readable when a statement is long.
    const MAX_CHARS: usize = 120;
    if line.chars().count() > MAX_CHARS {
        let short: String = line.chars().take(MAX_CHARS).collect();
        format!("{short}...")
    } else {
        line
    }
}

/// An expression as printed (`max(b0[i0], 0.0)`).
pub fn expr_text(expr: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, expr);
    out
}

/// An index as printed inside the brackets (`16*i0 + i1 + 3`).
pub fn index_text(index: &Index) -> String {
    let mut out = String::new();
    write_index(&mut out, index);
    out
}

struct ShapeText<'a>(&'a [usize]);

impl fmt::Display for ShapeText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (idx, dim) in self.0.iter().enumerate() {
            if idx > 0 {
                f.write_str(",")?;
            }
            write!(f, "{dim}")?;
        }
        f.write_str("]")
    }
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

pub(crate) fn role_name(role: BufferRole) -> &'static str {
    match role {
        BufferRole::Input => "input",
        BufferRole::Weight => "weight",
        BufferRole::Output => "output",
        BufferRole::Scratch => "scratch",
    }
}

fn write_kernel(out: &mut String, kernel: &Kernel, depth: usize, args: Option<&[ProgramBufferId]>) {
    indent(out, depth);
    if let Some(args) = args {
        out.push_str("call (");
        for (idx, arg) in args.iter().enumerate() {
            if idx > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{arg}");
        }
        out.push_str(") ");
    }
    out.push_str("kernel ");
    write_name(out, &kernel.name);
    if !kernel.origins.is_empty() {
        out.push_str(" from ");
        for (idx, origin) in kernel.origins.iter().enumerate() {
            if idx > 0 {
                out.push_str(", ");
            }
            write_name(out, origin);
        }
    }
    out.push_str(" {\n");
    for (idx, buffer) in kernel.buffers.iter().enumerate() {
        indent(out, depth + 1);
        let _ = write!(
            out,
            "b{idx}: {}[{}] {} ",
            buffer.dtype,
            buffer.len,
            role_name(buffer.role)
        );
        write_name(out, &buffer.name);
        out.push('\n');
    }
    let mut n_lets = vec![0usize; kernel.locals.len()];
    let mut max_bound: Option<u32> = None;
    walk_stmts(&kernel.body, &mut |stmt| match stmt {
        Stmt::Let { local, .. } => {
            if let Some(count) = n_lets.get_mut(local.0 as usize) {
                *count += 1;
            }
        }
        Stmt::Loop(lp) => max_bound = Some(max_bound.map_or(lp.var.0, |m| m.max(lp.var.0))),
        _ => {}
    });
    for (idx, (&dtype, &count)) in kernel.locals.iter().zip(&n_lets).enumerate() {
        if count == 0 {
            indent(out, depth + 1);
            let _ = writeln!(out, "local v{idx}: {dtype}");
        }
    }
    let inferred_vars = max_bound.map_or(0, |m| u64::from(m) + 1);
    if u64::from(kernel.n_loop_vars) != inferred_vars {
        indent(out, depth + 1);
        let _ = writeln!(out, "vars {}", kernel.n_loop_vars);
    }
    let printer = StmtPrinter { kernel };
    for stmt in &kernel.body {
        printer.write(out, stmt, depth + 1);
    }
    indent(out, depth);
    out.push_str("}\n");
}

/// Calls `visit` on every statement of `stmts`, depth first, parents before children.
pub(crate) fn walk_stmts<'k>(stmts: &'k [Stmt], visit: &mut impl FnMut(&'k Stmt)) {
    for stmt in stmts {
        visit(stmt);
        match stmt {
            Stmt::Loop(lp) => walk_stmts(&lp.body, visit),
            Stmt::If {
                then, otherwise, ..
            } => {
                walk_stmts(then, visit);
                walk_stmts(otherwise, visit);
            }
            _ => {}
        }
    }
}

struct StmtPrinter<'k> {
    kernel: &'k Kernel,
}

impl StmtPrinter<'_> {
    fn write(&self, out: &mut String, stmt: &Stmt, depth: usize) {
        indent(out, depth);
        match stmt {
            Stmt::Loop(lp) => {
                write_loop_head(out, lp);
                out.push('\n');
                for inner in &lp.body {
                    self.write(out, inner, depth + 1);
                }
                indent(out, depth);
                out.push_str("}\n");
            }
            Stmt::If {
                cond,
                then,
                otherwise,
            } => {
                out.push_str("if ");
                write_expr(out, cond);
                out.push_str(" {\n");
                for inner in then {
                    self.write(out, inner, depth + 1);
                }
                indent(out, depth);
                if otherwise.is_empty() {
                    out.push_str("}\n");
                } else {
                    out.push_str("} else {\n");
                    for inner in otherwise {
                        self.write(out, inner, depth + 1);
                    }
                    indent(out, depth);
                    out.push_str("}\n");
                }
            }
            Stmt::Let { local, init } => {
                let _ = write!(out, "let {local}");
                if let Some(dtype) = self.kernel.locals.get(local.0 as usize) {
                    let _ = write!(out, ": {dtype}");
                }
                out.push_str(" = ");
                write_expr(out, init);
                out.push('\n');
            }
            Stmt::MatTile(tile) => {
                write_stmt(out, stmt);
                out.push('\n');
                indent(out, depth + 1);
                let _ = write!(out, "a {}[", tile.a);
                write_index(out, &tile.a_index);
                let _ = writeln!(out, "] row {} k {}", tile.a_row, tile.a_depth);
                indent(out, depth + 1);
                let _ = write!(out, "b {}[", tile.b);
                write_index(out, &tile.b_index);
                let _ = writeln!(out, "] k {}", tile.b_depth);
                indent(out, depth + 1);
                let _ = write!(out, "c {}[", tile.c);
                write_index(out, &tile.c_index);
                let _ = write!(out, "] row {}", tile.c_row);
                if tile.accumulate {
                    out.push_str(" accumulate");
                }
                out.push('\n');
                if let Some(epilogue) = &tile.epilogue {
                    indent(out, depth + 1);
                    let _ = write!(
                        out,
                        "epilogue row {} col {} acc {} = ",
                        epilogue.row, epilogue.col, epilogue.acc
                    );
                    write_expr(out, &epilogue.value);
                    out.push('\n');
                }
                indent(out, depth);
                out.push_str("}\n");
            }
            _ => {
                write_stmt(out, stmt);
                out.push('\n');
            }
        }
    }
}

/// Assign and Store (and, for [`stmt_head`], a `let` without its dtype).
fn write_stmt(out: &mut String, stmt: &Stmt) {
    match stmt {
        Stmt::Assign { local, value } => {
            let _ = write!(out, "{local} = ");
            write_expr(out, value);
        }
        Stmt::Store { buf, index, value } => {
            let _ = write!(out, "{buf}[");
            write_index(out, index);
            out.push_str("] = ");
            write_expr(out, value);
        }
        Stmt::Let { local, init } => {
            let _ = write!(out, "let {local} = ");
            write_expr(out, init);
        }
        Stmt::Loop(lp) => write_loop_head(out, lp),
        Stmt::If { cond, .. } => {
            out.push_str("if ");
            write_expr(out, cond);
            out.push_str(" {");
        }
        Stmt::MatTile(tile) => {
            let _ = write!(
                out,
                "tile rows {} cols {} depth {} {{",
                tile.rows, tile.cols, tile.depth
            );
        }
    }
}

fn write_loop_head(out: &mut String, lp: &Loop) {
    let _ = write!(out, "for {} in 0..{}", lp.var, lp.extent);
    match lp.kind {
        LoopKind::Serial => {}
        LoopKind::Vectorized { width } => {
            let _ = write!(out, " vectorize {width}");
        }
        LoopKind::Unrolled { factor } => {
            let _ = write!(out, " unroll {factor}");
        }
        LoopKind::Parallel => out.push_str(" parallel"),
    }
    out.push_str(" {");
}

fn write_index(out: &mut String, index: &Index) {
    let mut first = true;
    let mut term = |out: &mut String, coeff: i64, what: &dyn Fn(&mut String)| {
        let magnitude = coeff.unsigned_abs();
        if first {
            if coeff < 0 {
                out.push('-');
            }
        } else {
            out.push_str(if coeff < 0 { " - " } else { " + " });
        }
        first = false;
        if magnitude != 1 {
            let _ = write!(out, "{magnitude}*");
        }
        what(out);
    };
    for &(var, coeff) in &index.terms {
        term(out, coeff, &|out| {
            let _ = write!(out, "{var}");
        });
    }
    if let Some(dynamic) = &index.dynamic {
        term(out, dynamic.stride, &|out| {
            out.push_str("dyn(");
            write_expr(out, &dynamic.value);
            let _ = write!(out, ", {})", dynamic.extent);
        });
    }
    if first {
        let _ = write!(out, "{}", index.offset);
    } else if index.offset != 0 {
        let sign = if index.offset < 0 { " - " } else { " + " };
        let _ = write!(out, "{sign}{}", index.offset.unsigned_abs());
    }
}

/// Binding strength of infix operators; atoms bind tightest.
const PREC_OR: u8 = 1;
const PREC_XOR: u8 = 2;
const PREC_AND: u8 = 3;
const PREC_CMP: u8 = 4;
const PREC_ADD: u8 = 5;
const PREC_MUL: u8 = 6;
const PREC_ATOM: u8 = 10;

/// The infix spelling and precedence of a binary op, or `None` for the ones written as calls.
fn binary_infix(op: BinaryOp) -> Option<(&'static str, u8)> {
    Some(match op {
        BinaryOp::Add => ("+", PREC_ADD),
        BinaryOp::Sub => ("-", PREC_ADD),
        BinaryOp::Mul => ("*", PREC_MUL),
        BinaryOp::Div => ("/", PREC_MUL),
        BinaryOp::And => ("&", PREC_AND),
        BinaryOp::Or => ("|", PREC_OR),
        BinaryOp::Xor => ("^", PREC_XOR),
        BinaryOp::Rem | BinaryOp::Max | BinaryOp::Min | BinaryOp::Pow => return None,
    })
}

/// The function-call name of a binary op written as a call.
fn binary_call_name(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Rem => "rem",
        BinaryOp::Max => "max",
        BinaryOp::Min => "min",
        BinaryOp::Pow => "pow",
        BinaryOp::Add => "add",
        BinaryOp::Sub => "sub",
        BinaryOp::Mul => "mul",
        BinaryOp::Div => "div",
        BinaryOp::And => "and",
        BinaryOp::Or => "or",
        BinaryOp::Xor => "xor",
    }
}

const CALL_BINARY: [BinaryOp; 4] = [BinaryOp::Rem, BinaryOp::Max, BinaryOp::Min, BinaryOp::Pow];

fn cmp_symbol(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "==",
        CmpOp::Ne => "!=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
    }
}

/// Every unary op with its name in the text (the same as its name in `ir-spec/loops.md`).
pub const UNARY_NAMES: [(UnaryOp, &str); 23] = [
    (UnaryOp::Neg, "neg"),
    (UnaryOp::Abs, "abs"),
    (UnaryOp::Not, "not"),
    (UnaryOp::Sqrt, "sqrt"),
    (UnaryOp::Exp, "exp"),
    (UnaryOp::Log, "log"),
    (UnaryOp::Tanh, "tanh"),
    (UnaryOp::Sigmoid, "sigmoid"),
    (UnaryOp::Erf, "erf"),
    (UnaryOp::Floor, "floor"),
    (UnaryOp::Ceil, "ceil"),
    (UnaryOp::Round, "round"),
    (UnaryOp::Sin, "sin"),
    (UnaryOp::Cos, "cos"),
    (UnaryOp::Tan, "tan"),
    (UnaryOp::Asin, "asin"),
    (UnaryOp::Acos, "acos"),
    (UnaryOp::Atan, "atan"),
    (UnaryOp::Sinh, "sinh"),
    (UnaryOp::Cosh, "cosh"),
    (UnaryOp::Asinh, "asinh"),
    (UnaryOp::Acosh, "acosh"),
    (UnaryOp::Atanh, "atanh"),
];

/// The text name of a unary op (`sqrt`).
pub fn unary_name(op: UnaryOp) -> &'static str {
    UNARY_NAMES
        .iter()
        .find(|(o, _)| *o == op)
        .map_or("?", |(_, name)| name)
}

/// The text name of a binary op (`add`, `max`), as error messages name it.
pub fn binary_name(op: BinaryOp) -> &'static str {
    binary_call_name(op)
}

fn expr_prec(expr: &Expr) -> u8 {
    match expr {
        Expr::Binary(op, ..) => binary_infix(*op).map_or(PREC_ATOM, |(_, prec)| prec),
        Expr::Cmp(..) => PREC_CMP,
        _ => PREC_ATOM,
    }
}

fn write_operand(out: &mut String, expr: &Expr, parens: bool) {
    if parens {
        out.push('(');
        write_expr(out, expr);
        out.push(')');
    } else {
        write_expr(out, expr);
    }
}

fn write_scalar(out: &mut String, scalar: Scalar) {
    match scalar {
        Scalar::F32(x) => {
            let _ = write_f32(out, x);
        }
        Scalar::F64(x) => {
            let _ = write_f64(out, x);
            out.push_str(":f64");
        }
        Scalar::I64(x) => {
            let _ = write!(out, "{x}");
        }
        Scalar::I32(x) => {
            let _ = write!(out, "{x}:i32");
        }
        Scalar::I8(x) => {
            let _ = write!(out, "{x}:i8");
        }
        Scalar::U8(x) => {
            let _ = write!(out, "{x}:u8");
        }
        Scalar::Bool(x) => {
            let _ = write!(out, "{x}");
        }
    }
}

fn write_expr(out: &mut String, expr: &Expr) {
    match expr {
        Expr::Const(scalar) => write_scalar(out, *scalar),
        Expr::Var(var) => {
            let _ = write!(out, "{var}");
        }
        Expr::Local(local) => {
            let _ = write!(out, "{local}");
        }
        Expr::Load { buf, index } => {
            let _ = write!(out, "{buf}[");
            write_index(out, index);
            out.push(']');
        }
        Expr::Unary(op, a) => {
            let _ = write!(out, "{}(", unary_name(*op));
            write_expr(out, a);
            out.push(')');
        }
        Expr::Binary(op, a, b) => match binary_infix(*op) {
            Some((symbol, prec)) => {
                write_operand(out, a, expr_prec(a) < prec);
                let _ = write!(out, " {symbol} ");
                write_operand(out, b, expr_prec(b) <= prec);
            }
            None => {
                let _ = write!(out, "{}(", binary_call_name(*op));
                write_expr(out, a);
                out.push_str(", ");
                write_expr(out, b);
                out.push(')');
            }
        },
        Expr::Cmp(op, a, b) => {
            write_operand(out, a, expr_prec(a) <= PREC_CMP);
            let _ = write!(out, " {} ", cmp_symbol(*op));
            write_operand(out, b, expr_prec(b) <= PREC_CMP);
        }
        Expr::Fma(a, b, c) => {
            out.push_str("fma(");
            write_expr(out, a);
            out.push_str(", ");
            write_expr(out, b);
            out.push_str(", ");
            write_expr(out, c);
            out.push(')');
        }
        Expr::Select {
            cond,
            then,
            otherwise,
        } => {
            out.push_str("select(");
            write_expr(out, cond);
            out.push_str(", ");
            write_expr(out, then);
            out.push_str(", ");
            write_expr(out, otherwise);
            out.push(')');
        }
        Expr::Cast(dtype, a) => {
            let _ = write!(out, "cast<{dtype}>(");
            write_expr(out, a);
            out.push(')');
        }
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.'
}

fn is_ident(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.first().is_some_and(|&b| is_ident_start(b))
        && bytes[1..].iter().all(|&b| is_ident_continue(b))
}

/// Whether `name` can be written bare: an IDENT, or `%`/`@` followed by IDENT characters (`%3`,
/// `@conv1.weight`), the way graph values and constants are named.
fn is_bare_name(name: &str) -> bool {
    if is_ident(name) {
        return true;
    }
    match name.as_bytes() {
        [b'%' | b'@', rest @ ..] => !rest.is_empty() && rest.iter().all(|&b| is_ident_continue(b)),
        _ => false,
    }
}

fn write_name(out: &mut String, name: &str) {
    if is_bare_name(name) {
        out.push_str(name);
    } else {
        write_quoted(out, name);
    }
}

fn write_quoted(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Tok<'a> {
    /// `[A-Za-z_][A-Za-z0-9_.]*`: keywords, ids (`b0`, `i1`, `v2`), function and dtype names.
    Ident(&'a str),
    /// `%name` / `@name` written bare; the text includes the sigil.
    Sigil(&'a str),
    /// Digits only; a sign is a separate `-` token.
    Int(&'a str),
    /// Digits with a fraction or an exponent.
    Float(&'a str),
    /// `0x` and hex digits; the digits only.
    Hex(&'a str),
    Str(Cow<'a, str>),
    Punct(&'static str),
    Eof,
    Invalid(String),
}

impl fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) | Tok::Sigil(s) | Tok::Int(s) | Tok::Float(s) => write!(f, "`{s}`"),
            Tok::Hex(s) => write!(f, "`0x{s}`"),
            Tok::Str(s) => write!(f, "string {s:?}"),
            Tok::Punct(p) => write!(f, "`{p}`"),
            Tok::Eof => f.write_str("end of file"),
            Tok::Invalid(message) => f.write_str(message),
        }
    }
}

#[derive(Clone, Debug)]
struct Token<'a> {
    tok: Tok<'a>,
    pos: usize,
}

#[derive(Clone)]
struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

/// Two-character punctuation first, so `<=` is not read as `<` `=`.
const PUNCT: [&str; 22] = [
    "..", "<=", ">=", "==", "!=", "{", "}", "(", ")", "[", "]", ",", ":", "=", "+", "-", "*", "/",
    "<", ">", "&", "|",
];

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Lexer<'a> {
        let pos = if src.starts_with('\u{feff}') { 3 } else { 0 };
        Lexer { src, pos }
    }

    fn skip_trivia(&mut self) {
        let bytes = self.src.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => self.pos += 1,
                b';' => {
                    self.pos = bytes[self.pos..]
                        .iter()
                        .position(|&c| c == b'\n')
                        .map_or(bytes.len(), |len| self.pos + len);
                }
                _ => break,
            }
        }
    }

    fn run_end(&self, start: usize, pred: impl Fn(u8) -> bool) -> usize {
        let bytes = self.src.as_bytes();
        let mut end = start;
        while bytes.get(end).is_some_and(|&b| pred(b)) {
            end += 1;
        }
        end
    }

    fn next_token(&mut self) -> Token<'a> {
        self.skip_trivia();
        let start = self.pos;
        let tok = self.lex_at(start);
        Token { tok, pos: start }
    }

    fn lex_at(&mut self, start: usize) -> Tok<'a> {
        let bytes = self.src.as_bytes();
        let Some(&b) = bytes.get(start) else {
            return Tok::Eof;
        };
        if b == b'^' {
            self.pos = start + 1;
            return Tok::Punct("^");
        }
        if is_ident_start(b) {
            let end = self.run_end(start + 1, is_ident_continue);
            self.pos = end;
            return Tok::Ident(&self.src[start..end]);
        }
        if b == b'%' || b == b'@' {
            let end = self.run_end(start + 1, is_ident_continue);
            if end == start + 1 {
                self.pos = start + 1;
                return Tok::Invalid(format!(
                    "`{}` must be followed by a name like `{}3` (quote other names: \"{}x y\")",
                    b as char, b as char, b as char
                ));
            }
            self.pos = end;
            return Tok::Sigil(&self.src[start..end]);
        }
        if b.is_ascii_digit() {
            return self.number(start);
        }
        if b == b'"' {
            return match self.string(start) {
                Ok(s) => Tok::Str(s),
                Err(message) => Tok::Invalid(message),
            };
        }
        for punct in PUNCT {
            if self.src[start..].starts_with(punct) {
                self.pos = start + punct.len();
                return Tok::Punct(punct);
            }
        }
        let ch = self.src[start..].chars().next().unwrap_or('?');
        self.pos = start + ch.len_utf8();
        Tok::Invalid(format!("unexpected character `{}`", ch.escape_debug()))
    }

    fn number(&mut self, start: usize) -> Tok<'a> {
        let bytes = self.src.as_bytes();
        if bytes[start..].starts_with(b"0x") {
            let end = self.run_end(start + 2, |b| b.is_ascii_hexdigit());
            if end == start + 2 || bytes.get(end).is_some_and(|&b| is_ident_continue(b)) {
                let bad_end = self.run_end(end, is_ident_continue);
                self.pos = bad_end;
                return Tok::Invalid(format!(
                    "invalid hex number `{}`",
                    &self.src[start..bad_end]
                ));
            }
            self.pos = end;
            return Tok::Hex(&self.src[start + 2..end]);
        }
        let mut end = self.run_end(start, |b| b.is_ascii_digit());
        let mut is_float = false;
        // `0..8` is a range: a `.` is a fraction only when a digit follows it.
        if bytes.get(end) == Some(&b'.') && bytes.get(end + 1).is_some_and(u8::is_ascii_digit) {
            end = self.run_end(end + 1, |b| b.is_ascii_digit());
            is_float = true;
        }
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            let mut exp_start = end + 1;
            if matches!(bytes.get(exp_start), Some(b'+' | b'-')) {
                exp_start += 1;
            }
            let exp_end = self.run_end(exp_start, |b| b.is_ascii_digit());
            if exp_end == exp_start {
                self.pos = exp_start;
                return Tok::Invalid(format!(
                    "expected exponent digits in `{}`",
                    &self.src[start..exp_start]
                ));
            }
            end = exp_end;
            is_float = true;
        }
        if bytes
            .get(end)
            .is_some_and(|&b| is_ident_continue(b) && b != b'.')
        {
            let bad_end = self.run_end(end, is_ident_continue);
            self.pos = bad_end;
            return Tok::Invalid(format!(
                "invalid number `{}` (a dtype is written after a colon: `3:i32`)",
                &self.src[start..bad_end]
            ));
        }
        self.pos = end;
        let text = &self.src[start..end];
        if is_float {
            Tok::Float(text)
        } else {
            Tok::Int(text)
        }
    }

    fn string(&mut self, start: usize) -> Result<Cow<'a, str>, String> {
        let mut out = String::new();
        let mut chars = self.src[start + 1..].char_indices();
        let unterminated = "unterminated string: missing the closing `\"` on this line";
        while let Some((offset, ch)) = chars.next() {
            let at = start + 1 + offset;
            match ch {
                '"' => {
                    self.pos = at + 1;
                    return Ok(Cow::Owned(out));
                }
                '\n' => {
                    self.pos = at;
                    return Err(unterminated.to_string());
                }
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('u') => {
                        let rest = &self.src[at + 2..];
                        let code = rest
                            .strip_prefix('{')
                            .and_then(|r| r.split_once('}'))
                            .and_then(|(hex, _)| u32::from_str_radix(hex, 16).ok())
                            .and_then(char::from_u32);
                        let Some(code) = code else {
                            self.pos = at;
                            return Err("invalid `\\u{...}` escape in string".to_string());
                        };
                        out.push(code);
                        let skip = rest.find('}').map_or(0, |idx| idx + 1);
                        for _ in 0..skip {
                            chars.next();
                        }
                    }
                    other => {
                        self.pos = at;
                        let shown = other.map(|c| c.escape_debug().to_string());
                        return Err(format!(
                            "unknown escape `\\{}` in string",
                            shown.unwrap_or_default()
                        ));
                    }
                },
                c => out.push(c),
            }
        }
        self.pos = self.src.len();
        Err(unterminated.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------------------------

/// Parses one kernel (`kernel NAME [from ...] { ... }`), the whole text.
pub fn parse_kernel(src: &str) -> Result<Kernel, ParseError> {
    let mut parser = Parser::new(src);
    let kernel = parser.kernel()?;
    parser.expect_eof()?;
    Ok(kernel)
}

/// Parses a program. `weights` supplies the data of each `weight` buffer by its name; each is checked
/// against the declared dtype, shape and hash. The text holds only a weight's hash, so a program
/// cannot be rebuilt from its text alone.
pub fn parse_program(
    src: &str,
    weights: &dyn Fn(&str) -> Option<Tensor>,
) -> Result<Program, ParseError> {
    let mut parser = Parser::new(src);
    let program = parser.program(weights)?;
    parser.expect_eof()?;
    Ok(program)
}

type PResult<T> = Result<T, ParseError>;

struct Parser<'a> {
    src: &'a str,
    lexer: Lexer<'a>,
    peek: Token<'a>,
}

/// The ids a kernel text names, collected while parsing.
#[derive(Default)]
struct KernelScope {
    /// Local id -> (dtype, position of the declaration).
    locals: BTreeMap<u32, (DType, usize)>,
    /// Local id -> position of the first use, to report a local without a dtype.
    used_locals: BTreeMap<u32, usize>,
    max_bound_var: Option<u32>,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Parser<'a> {
        let mut lexer = Lexer::new(src);
        let peek = lexer.next_token();
        Parser { src, lexer, peek }
    }

    fn err(&self, pos: usize, message: impl Into<String>) -> ParseError {
        let pos = pos.min(self.src.len());
        let before = self.src.get(..pos).unwrap_or(self.src);
        let line_start = before.rfind('\n').map_or(0, |idx| idx + 1);
        ParseError {
            line: before.matches('\n').count() + 1,
            col: before[line_start..].chars().count() + 1,
            message: message.into(),
        }
    }

    fn bump(&mut self) -> Token<'a> {
        let next = self.lexer.next_token();
        std::mem::replace(&mut self.peek, next)
    }

    fn peek_second(&self) -> Tok<'a> {
        self.lexer.clone().next_token().tok
    }

    /// An error at the next token saying what was expected there.
    fn unexpected(&self, expected: &str) -> ParseError {
        match &self.peek.tok {
            Tok::Invalid(message) => self.err(self.peek.pos, message.clone()),
            found => self.err(self.peek.pos, format!("expected {expected}, found {found}")),
        }
    }

    fn at_punct(&self, punct: &str) -> bool {
        matches!(self.peek.tok, Tok::Punct(p) if p == punct)
    }

    fn eat_punct(&mut self, punct: &str) -> bool {
        let at = self.at_punct(punct);
        if at {
            self.bump();
        }
        at
    }

    fn expect_punct(&mut self, punct: &str, context: &str) -> PResult<usize> {
        if self.at_punct(punct) {
            Ok(self.bump().pos)
        } else {
            Err(self.unexpected(&format!("`{punct}` {context}")))
        }
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek.tok, Tok::Ident(s) if s == keyword)
    }

    fn expect_keyword(&mut self, keyword: &str, context: &str) -> PResult<usize> {
        if self.at_keyword(keyword) {
            Ok(self.bump().pos)
        } else {
            Err(self.unexpected(&format!("`{keyword}` {context}")))
        }
    }

    fn expect_eof(&mut self) -> PResult<()> {
        if self.peek.tok == Tok::Eof {
            Ok(())
        } else {
            Err(self.unexpected("end of file"))
        }
    }

    /// A name: IDENT, `%x`/`@x`, or a string.
    fn name(&mut self, what: &str) -> PResult<String> {
        match &self.peek.tok {
            Tok::Ident(s) | Tok::Sigil(s) => {
                let name = s.to_string();
                self.bump();
                Ok(name)
            }
            Tok::Str(s) => {
                let name = s.to_string();
                self.bump();
                Ok(name)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    /// An unsigned integer that fits `T`.
    fn uint<T: TryFrom<u128>>(&mut self, what: &str) -> PResult<T> {
        let Tok::Int(text) = self.peek.tok else {
            return Err(self.unexpected(what));
        };
        let pos = self.bump().pos;
        text.parse::<u128>()
            .ok()
            .and_then(|v| T::try_from(v).ok())
            .ok_or_else(|| self.err(pos, format!("{what} `{text}` is too large")))
    }

    fn dtype(&mut self) -> PResult<DType> {
        if let Tok::Ident(name) = self.peek.tok {
            if let Some(dtype) = DType::from_name(name) {
                self.bump();
                return Ok(dtype);
            }
        }
        Err(self.unexpected("a dtype (f32, f64, i64, i32, i8, u8, bool)"))
    }

    /// `b3`, `i0`, `v2`: an id with the given prefix, if the next token is one.
    fn peek_id(&self, prefix: char) -> Option<u32> {
        match self.peek.tok {
            Tok::Ident(s) => parse_id(s, prefix),
            _ => None,
        }
    }

    fn program(&mut self, weights: &dyn Fn(&str) -> Option<Tensor>) -> PResult<Program> {
        self.expect_keyword("program", "to start a program")?;
        self.expect_punct("{", "to open the program")?;
        let mut program = Program {
            buffers: Vec::new(),
            calls: Vec::new(),
            outputs: Vec::new(),
        };
        loop {
            if self.eat_punct("}") {
                return Ok(program);
            }
            match &self.peek.tok {
                Tok::Ident("call") => {
                    self.bump();
                    self.expect_punct("(", "before the call's buffers")?;
                    let mut args = Vec::new();
                    if !self.eat_punct(")") {
                        loop {
                            args.push(self.program_buffer_ref(program.buffers.len())?);
                            if self.eat_punct(")") {
                                break;
                            }
                            self.expect_punct(",", "or `)` in the call's buffers")?;
                        }
                    }
                    let kernel = self.kernel()?;
                    program.calls.push(KernelCall { kernel, args });
                }
                Tok::Ident("output") => {
                    self.bump();
                    let name = self.name("an output name")?;
                    self.expect_punct("=", "after the output name")?;
                    let buffer = self.program_buffer_ref(program.buffers.len())?;
                    program.outputs.push((name, buffer));
                }
                Tok::Ident(s) if s.starts_with('B') => {
                    let buffer = self.program_buffer(program.buffers.len(), weights)?;
                    program.buffers.push(buffer);
                }
                _ => {
                    return Err(self.unexpected(
                        "a buffer `B0: ...`, `call (...) kernel ...`, `output ...` or `}`",
                    ))
                }
            }
        }
    }

    fn program_buffer_ref(&mut self, n_buffers: usize) -> PResult<ProgramBufferId> {
        let pos = self.peek.pos;
        let id = match self.peek.tok {
            Tok::Ident(s) => parse_id(s, 'B'),
            _ => None,
        };
        let Some(id) = id else {
            return Err(self.unexpected("a program buffer like `B0`"));
        };
        self.bump();
        if id as usize >= n_buffers {
            return Err(self.err(pos, format!("program buffer B{id} is not declared")));
        }
        Ok(ProgramBufferId(id))
    }

    fn program_buffer(
        &mut self,
        idx: usize,
        weights: &dyn Fn(&str) -> Option<Tensor>,
    ) -> PResult<ProgramBuffer> {
        let pos = self.peek.pos;
        let id = match self.peek.tok {
            Tok::Ident(s) => parse_id(s, 'B'),
            _ => None,
        };
        if id != Some(idx as u32) {
            return Err(self.err(
                pos,
                format!("expected program buffer B{idx} next (buffers are declared in order)"),
            ));
        }
        self.bump();
        self.expect_punct(":", "after the buffer id")?;
        let dtype = self.dtype()?;
        self.expect_punct("[", "to open the shape")?;
        let mut shape = Vec::new();
        if !self.eat_punct("]") {
            loop {
                shape.push(self.uint::<usize>("a dim")?);
                if self.eat_punct("]") {
                    break;
                }
                self.expect_punct(",", "or `]` in the shape")?;
            }
        }
        let kind_pos = self.peek.pos;
        let source_kind = self.name("`input`, `weight` or `computed`")?;
        let name = self.name("the buffer's name")?;
        let source = match source_kind.as_str() {
            "input" => {
                let input_name = if self.at_keyword("graph_input") {
                    self.bump();
                    self.name("the graph input's name")?
                } else {
                    name.clone()
                };
                BufferSource::Input { name: input_name }
            }
            "weight" => {
                self.expect_keyword("hash", "after the weight's name")?;
                let hash_pos = self.peek.pos;
                let Tok::Hex(hex) = self.peek.tok else {
                    return Err(self.unexpected("a hash like `0x0123456789abcdef`"));
                };
                self.bump();
                let hash = u64::from_str_radix(hex, 16)
                    .map_err(|_| self.err(hash_pos, "the hash must fit 64 bits"))?;
                let Some(tensor) = weights(&name) else {
                    return Err(self.err(pos, format!("no data was given for weight {name}")));
                };
                if tensor.dtype() != dtype || tensor.shape() != shape.as_slice() {
                    return Err(self.err(
                        pos,
                        format!(
                            "weight {name} is declared {dtype}{}, the data given is {}{}",
                            ShapeText(&shape),
                            tensor.dtype(),
                            ShapeText(tensor.shape())
                        ),
                    ));
                }
                let actual = weight_hash(&tensor);
                if actual != hash {
                    return Err(self.err(
                        hash_pos,
                        format!(
                            "the data given for weight {name} has hash 0x{actual:016x}, not 0x{hash:016x}"
                        ),
                    ));
                }
                BufferSource::Weight(tensor)
            }
            "computed" => BufferSource::Computed,
            other => {
                return Err(self.err(
                    kind_pos,
                    format!("expected `input`, `weight` or `computed`, found `{other}`"),
                ))
            }
        };
        Ok(ProgramBuffer {
            name,
            dtype,
            shape,
            source,
        })
    }

    fn kernel(&mut self) -> PResult<Kernel> {
        let kernel_pos = self.expect_keyword("kernel", "to start a kernel")?;
        let name = self.name("the kernel's name")?;
        let mut origins = Vec::new();
        if self.at_keyword("from") {
            self.bump();
            loop {
                origins.push(self.name("a graph node the kernel comes from")?);
                if !self.eat_punct(",") {
                    break;
                }
            }
        }
        self.expect_punct("{", "to open the kernel")?;
        let mut buffers = Vec::new();
        let mut scope = KernelScope::default();
        let mut n_loop_vars: Option<u32> = None;
        // Header items: buffers, then undeclared locals and the variable count, in any order.
        loop {
            let second = self.peek_second();
            if let (Some(id), Tok::Punct(":")) = (self.peek_id('b'), &second) {
                let pos = self.bump().pos;
                if id as usize != buffers.len() {
                    return Err(self.err(
                        pos,
                        format!(
                            "expected buffer b{} next (buffers are declared in order)",
                            buffers.len()
                        ),
                    ));
                }
                self.bump();
                let dtype = self.dtype()?;
                self.expect_punct("[", "before the buffer's length")?;
                let len = self.uint::<usize>("a length")?;
                self.expect_punct("]", "after the buffer's length")?;
                let role_pos = self.peek.pos;
                let role = match self.name("a role")?.as_str() {
                    "input" => BufferRole::Input,
                    "weight" => BufferRole::Weight,
                    "output" => BufferRole::Output,
                    "scratch" => BufferRole::Scratch,
                    other => {
                        return Err(self.err(
                            role_pos,
                            format!(
                                "expected a role (input, weight, output, scratch), found `{other}`"
                            ),
                        ))
                    }
                };
                let name = self.name("the buffer's name")?;
                buffers.push(BufferDecl {
                    name,
                    dtype,
                    len,
                    role,
                });
            } else if self.at_keyword("local") {
                self.bump();
                let pos = self.peek.pos;
                let Some(id) = self.peek_id('v') else {
                    return Err(self.unexpected("a local like `v0`"));
                };
                self.bump();
                self.expect_punct(":", "after the local")?;
                let dtype = self.dtype()?;
                declare_local(self, &mut scope, id, dtype, pos)?;
            } else if self.at_keyword("vars") {
                self.bump();
                n_loop_vars = Some(self.uint::<u32>("a variable count")?);
            } else {
                break;
            }
        }
        let body = self.block_until_close(&mut scope)?;
        let n_locals = scope.locals.keys().next_back().map_or(0, |&max| max + 1);
        let mut locals = Vec::with_capacity(n_locals as usize);
        for id in 0..n_locals {
            match scope.locals.get(&id) {
                Some(&(dtype, _)) => locals.push(dtype),
                None => {
                    let pos = scope.used_locals.get(&id).copied().unwrap_or(kernel_pos);
                    return Err(self.err(
                        pos,
                        format!("local v{id} has no dtype: declare it with `let v{id}: f32 = ...` or `local v{id}: f32`"),
                    ));
                }
            }
        }
        if let Some((&id, &pos)) = scope.used_locals.range(n_locals..).next() {
            return Err(self.err(pos, format!("local v{id} is never declared")));
        }
        let inferred_vars = scope.max_bound_var.map_or(0, |m| m.saturating_add(1));
        Ok(Kernel {
            name,
            origins,
            buffers,
            locals,
            n_loop_vars: n_loop_vars.unwrap_or(inferred_vars),
            body,
        })
    }

    /// Statements up to and including the closing `}`.
    fn block_until_close(&mut self, scope: &mut KernelScope) -> PResult<Vec<Stmt>> {
        let mut stmts = Vec::new();
        loop {
            if self.eat_punct("}") {
                return Ok(stmts);
            }
            stmts.push(self.stmt(scope)?);
        }
    }

    fn stmt(&mut self, scope: &mut KernelScope) -> PResult<Stmt> {
        if self.at_keyword("for") {
            self.bump();
            let Some(id) = self.peek_id('i') else {
                return Err(self.unexpected("a loop variable like `i0`"));
            };
            self.bump();
            scope.max_bound_var = Some(scope.max_bound_var.map_or(id, |m| m.max(id)));
            self.expect_keyword("in", "after the loop variable")?;
            let lo_pos = self.peek.pos;
            let lo = self.uint::<u64>("the loop's start `0`")?;
            if lo != 0 {
                return Err(self.err(lo_pos, "loops start at 0 (`for i0 in 0..N`)"));
            }
            self.expect_punct("..", "in the loop range")?;
            let extent = self.uint::<usize>("the loop's extent")?;
            let kind = if self.at_keyword("vectorize") {
                self.bump();
                LoopKind::Vectorized {
                    width: self.uint::<u32>("a vector width")?,
                }
            } else if self.at_keyword("unroll") {
                self.bump();
                LoopKind::Unrolled {
                    factor: self.uint::<u32>("an unroll factor")?,
                }
            } else if self.at_keyword("parallel") {
                self.bump();
                LoopKind::Parallel
            } else {
                LoopKind::Serial
            };
            self.expect_punct(
                "{",
                "to open the loop body (or `vectorize N`, `unroll N`, `parallel`)",
            )?;
            let body = self.block_until_close(scope)?;
            return Ok(Stmt::Loop(Loop {
                var: LoopVar(id),
                extent,
                kind,
                body,
            }));
        }
        if self.at_keyword("let") {
            self.bump();
            let pos = self.peek.pos;
            let Some(id) = self.peek_id('v') else {
                return Err(self.unexpected("a local like `v0`"));
            };
            self.bump();
            self.expect_punct(":", "and the local's dtype (`let v0: f32 = ...`)")?;
            let dtype = self.dtype()?;
            declare_local(self, scope, id, dtype, pos)?;
            self.expect_punct("=", "after the local's dtype")?;
            let init = self.expr(scope)?;
            return Ok(Stmt::Let {
                local: Local(id),
                init,
            });
        }
        if self.at_keyword("if") {
            self.bump();
            let cond = self.expr(scope)?;
            self.expect_punct("{", "to open the `if` body")?;
            let then = self.block_until_close(scope)?;
            let otherwise = if self.at_keyword("else") {
                self.bump();
                self.expect_punct("{", "after `else`")?;
                self.block_until_close(scope)?
            } else {
                Vec::new()
            };
            return Ok(Stmt::If {
                cond,
                then,
                otherwise,
            });
        }
        if self.at_keyword("tile") {
            return self.mat_tile(scope);
        }
        if let Some(id) = self.peek_id('v') {
            let pos = self.bump().pos;
            scope.used_locals.entry(id).or_insert(pos);
            self.expect_punct("=", "to assign the local")?;
            let value = self.expr(scope)?;
            return Ok(Stmt::Assign {
                local: Local(id),
                value,
            });
        }
        if let Some(id) = self.peek_id('b') {
            self.bump();
            self.expect_punct("[", "to index the buffer")?;
            let index = self.index(scope)?;
            self.expect_punct("=", "to store into the buffer")?;
            let value = self.expr(scope)?;
            return Ok(Stmt::Store {
                buf: BufferId(id),
                index,
                value,
            });
        }
        Err(self.unexpected("a statement (`for`, `let`, `if`, `vN = ...`, `bN[...] = ...`) or `}`"))
    }

    /// `tile rows R cols C depth K { a bA[..] row R k K  b bB[..] k K  c bC[..] row R [accumulate]
    /// [epilogue row iR col iC acc vA = expr] }`, after `tile`.
    fn mat_tile(&mut self, scope: &mut KernelScope) -> PResult<Stmt> {
        self.bump();
        let shape_pos = self.peek.pos;
        self.expect_keyword("rows", "after `tile`")?;
        let rows = self.uint::<u32>("the tile's rows")?;
        self.expect_keyword("cols", "after the tile's rows")?;
        let cols = self.uint::<u32>("the tile's columns")?;
        if rows == 0 || cols == 0 {
            return Err(self.err(shape_pos, "a tile has at least one row and one column"));
        }
        self.expect_keyword("depth", "after the tile's shape")?;
        let depth = self.uint::<usize>("the tile's depth")?;
        self.expect_punct("{", "to open the tile")?;
        self.expect_keyword("a", "to give the tile's `a` operand")?;
        let (a, a_index) = self.buffer_access(scope)?;
        self.expect_keyword("row", "after `a`'s index")?;
        let a_row = self.int_i64("`a`'s row stride")?;
        self.expect_keyword("k", "after `a`'s row stride")?;
        let a_depth = self.int_i64("`a`'s depth stride")?;
        self.expect_keyword("b", "to give the tile's `b` operand")?;
        let (b, b_index) = self.buffer_access(scope)?;
        self.expect_keyword("k", "after `b`'s index")?;
        let b_depth = self.int_i64("`b`'s depth stride")?;
        self.expect_keyword("c", "to give the tile's result `c`")?;
        let (c, c_index) = self.buffer_access(scope)?;
        self.expect_keyword("row", "after `c`'s index")?;
        let c_row = self.int_i64("`c`'s row stride")?;
        let accumulate = self.at_keyword("accumulate");
        if accumulate {
            self.bump();
        }
        let epilogue = if self.at_keyword("epilogue") {
            self.bump();
            self.expect_keyword("row", "after `epilogue`")?;
            let row = self.loop_var_ref()?;
            self.expect_keyword("col", "after the row variable")?;
            let col = self.loop_var_ref()?;
            self.expect_keyword("acc", "after the column variable")?;
            let Some(acc) = self.peek_id('v') else {
                return Err(self.unexpected("the accumulator local like `v0`"));
            };
            let pos = self.bump().pos;
            scope.used_locals.entry(acc).or_insert(pos);
            self.expect_punct("=", "before the epilogue's value")?;
            let value = self.expr(scope)?;
            Some(TileEpilogue {
                row,
                col,
                acc: Local(acc),
                value,
            })
        } else {
            None
        };
        self.expect_punct("}", "to close the tile")?;
        Ok(Stmt::MatTile(Box::new(MatTile {
            rows,
            cols,
            depth,
            a,
            a_index,
            a_row,
            a_depth,
            b,
            b_index,
            b_depth,
            c,
            c_index,
            c_row,
            accumulate,
            epilogue,
        })))
    }

    /// `bN[index]`.
    fn buffer_access(&mut self, scope: &mut KernelScope) -> PResult<(BufferId, Index)> {
        let Some(id) = self.peek_id('b') else {
            return Err(self.unexpected("a buffer like `b0`"));
        };
        self.bump();
        self.expect_punct("[", "to index the buffer")?;
        Ok((BufferId(id), self.index(scope)?))
    }

    /// `iN`, a loop variable named without binding a loop.
    fn loop_var_ref(&mut self) -> PResult<LoopVar> {
        let Some(id) = self.peek_id('i') else {
            return Err(self.unexpected("a loop variable like `i0`"));
        };
        self.bump();
        Ok(LoopVar(id))
    }

    /// A signed integer that fits i64 (`-3`, `512`).
    fn int_i64(&mut self, what: &str) -> PResult<i64> {
        let negative = self.eat_punct("-");
        let pos = self.peek.pos;
        let magnitude = self.uint::<u128>(what)?;
        let value = if negative {
            -(magnitude as i128)
        } else {
            magnitude as i128
        };
        i64::try_from(value).map_err(|_| self.err(pos, format!("{what} does not fit i64")))
    }

    /// An index up to and including the closing `]`.
    fn index(&mut self, scope: &mut KernelScope) -> PResult<Index> {
        let mut index = Index::default();
        let mut first = true;
        loop {
            if !first && self.at_punct("]") {
                let close = self.bump().pos;
                return normalize_checked(index)
                    .ok_or_else(|| self.err(close, "an index coefficient does not fit i64"));
            }
            let negative = if first {
                self.eat_punct("-")
            } else if self.eat_punct("+") {
                false
            } else if self.eat_punct("-") {
                true
            } else {
                return Err(self.unexpected("`+`, `-` or `]` in the index"));
            };
            first = false;
            let pos = self.peek.pos;
            let mut coeff: i128 = 1;
            let mut is_constant = false;
            if let Tok::Int(text) = self.peek.tok {
                self.bump();
                coeff = text
                    .parse::<i128>()
                    .map_err(|_| self.err(pos, format!("`{text}` is too large")))?;
                if self.eat_punct("*") {
                    // A coefficient; the variable or `dyn` follows.
                } else {
                    is_constant = true;
                }
            }
            if negative {
                coeff = -coeff;
            }
            let Ok(value) = i64::try_from(coeff) else {
                return Err(self.err(pos, "the number does not fit i64"));
            };
            if is_constant {
                index.offset = index
                    .offset
                    .checked_add(value)
                    .ok_or_else(|| self.err(pos, "the index offset does not fit i64"))?;
                continue;
            }
            if let Some(id) = self.peek_id('i') {
                self.bump();
                index.terms.push((LoopVar(id), value));
            } else if self.at_keyword("dyn") {
                let dyn_pos = self.bump().pos;
                if index.dynamic.is_some() {
                    return Err(self.err(dyn_pos, "an index has at most one `dyn(...)` term"));
                }
                self.expect_punct("(", "after `dyn`")?;
                let dyn_value = self.expr(scope)?;
                self.expect_punct(",", "before the extent of `dyn(value, extent)`")?;
                let extent_pos = self.peek.pos;
                let extent = self.uint::<u64>("the extent of `dyn(value, extent)`")?;
                let extent = i64::try_from(extent)
                    .map_err(|_| self.err(extent_pos, "the extent does not fit i64"))?;
                self.expect_punct(")", "to close `dyn(value, extent)`")?;
                index.dynamic = Some(Box::new(DynamicTerm {
                    value: dyn_value,
                    extent,
                    stride: value,
                }));
            } else {
                return Err(self.unexpected("a loop variable like `i0`, `dyn(...)` or a number"));
            }
        }
    }

    /// An expression; binary operators by precedence, comparisons do not chain.
    fn expr(&mut self, scope: &mut KernelScope) -> PResult<Expr> {
        self.expr_prec(scope, PREC_OR)
    }

    fn peek_infix(&self) -> Option<(Infix, u8)> {
        let Tok::Punct(p) = self.peek.tok else {
            return None;
        };
        Some(match p {
            "|" => (Infix::Binary(BinaryOp::Or), PREC_OR),
            "^" => (Infix::Binary(BinaryOp::Xor), PREC_XOR),
            "&" => (Infix::Binary(BinaryOp::And), PREC_AND),
            "==" => (Infix::Cmp(CmpOp::Eq), PREC_CMP),
            "!=" => (Infix::Cmp(CmpOp::Ne), PREC_CMP),
            "<" => (Infix::Cmp(CmpOp::Lt), PREC_CMP),
            "<=" => (Infix::Cmp(CmpOp::Le), PREC_CMP),
            ">" => (Infix::Cmp(CmpOp::Gt), PREC_CMP),
            ">=" => (Infix::Cmp(CmpOp::Ge), PREC_CMP),
            "+" => (Infix::Binary(BinaryOp::Add), PREC_ADD),
            "-" => (Infix::Binary(BinaryOp::Sub), PREC_ADD),
            "*" => (Infix::Binary(BinaryOp::Mul), PREC_MUL),
            "/" => (Infix::Binary(BinaryOp::Div), PREC_MUL),
            _ => return None,
        })
    }

    fn expr_prec(&mut self, scope: &mut KernelScope, min_prec: u8) -> PResult<Expr> {
        let mut lhs = self.atom(scope)?;
        let mut last_was_cmp = false;
        while let Some((infix, prec)) = self.peek_infix() {
            if prec < min_prec {
                break;
            }
            let pos = self.bump().pos;
            if prec == PREC_CMP {
                if last_was_cmp {
                    return Err(self.err(
                        pos,
                        "comparisons do not chain; add parentheses: `(a < b) == c`",
                    ));
                }
                last_was_cmp = true;
            }
            // Left associative: the right operand binds strictly tighter.
            let rhs = self.expr_prec(scope, prec + 1)?;
            lhs = match infix {
                Infix::Binary(op) => Expr::binary(op, lhs, rhs),
                Infix::Cmp(op) => Expr::cmp(op, lhs, rhs),
            };
        }
        Ok(lhs)
    }

    fn args(&mut self, scope: &mut KernelScope, name: &str, n: usize) -> PResult<Vec<Expr>> {
        self.expect_punct("(", &format!("after `{name}`"))?;
        let mut args = Vec::with_capacity(n);
        for idx in 0..n {
            args.push(self.expr(scope)?);
            if idx + 1 < n {
                self.expect_punct(",", &format!("`{name}` takes {n} arguments"))?;
            }
        }
        self.expect_punct(")", &format!("`{name}` takes {n} arguments"))?;
        Ok(args)
    }

    fn atom(&mut self, scope: &mut KernelScope) -> PResult<Expr> {
        let pos = self.peek.pos;
        match self.peek.tok.clone() {
            Tok::Punct("(") => {
                self.bump();
                let inner = self.expr(scope)?;
                self.expect_punct(")", "to close the parenthesis")?;
                Ok(inner)
            }
            Tok::Punct("-") => {
                self.bump();
                let lit = self.number_literal(true)?;
                self.typed_literal(lit, pos)
            }
            Tok::Int(_) | Tok::Float(_) => {
                let lit = self.number_literal(false)?;
                self.typed_literal(lit, pos)
            }
            Tok::Ident("inf" | "nan" | "nan32") => {
                let lit = self.number_literal(false)?;
                self.typed_literal(lit, pos)
            }
            Tok::Ident("true") => {
                self.bump();
                Ok(Expr::Const(Scalar::Bool(true)))
            }
            Tok::Ident("false") => {
                self.bump();
                Ok(Expr::Const(Scalar::Bool(false)))
            }
            Tok::Ident(name) => {
                if let Some(id) = parse_id(name, 'i') {
                    self.bump();
                    return Ok(Expr::Var(LoopVar(id)));
                }
                if let Some(id) = parse_id(name, 'v') {
                    self.bump();
                    scope.used_locals.entry(id).or_insert(pos);
                    return Ok(Expr::Local(Local(id)));
                }
                if let Some(id) = parse_id(name, 'b') {
                    self.bump();
                    self.expect_punct("[", "to index the buffer")?;
                    let index = self.index(scope)?;
                    return Ok(Expr::Load {
                        buf: BufferId(id),
                        index,
                    });
                }
                self.bump();
                if name == "cast" {
                    self.expect_punct("<", "after `cast` (`cast<i64>(x)`)")?;
                    let dtype = self.dtype()?;
                    self.expect_punct(">", "after the cast's dtype")?;
                    let mut args = self.args(scope, "cast", 1)?;
                    return Ok(Expr::cast(dtype, args.remove(0)));
                }
                if let Some(&(op, _)) = UNARY_NAMES.iter().find(|(_, n)| *n == name) {
                    let mut args = self.args(scope, name, 1)?;
                    return Ok(Expr::unary(op, args.remove(0)));
                }
                let arity_error =
                    |p: &Self, n: usize| p.err(pos, format!("`{name}` takes {n} arguments"));
                if let Some(&op) = CALL_BINARY.iter().find(|&&op| binary_call_name(op) == name) {
                    let [a, b]: [Expr; 2] = self
                        .args(scope, name, 2)?
                        .try_into()
                        .map_err(|_| arity_error(self, 2))?;
                    return Ok(Expr::binary(op, a, b));
                }
                if name == "fma" || name == "select" {
                    let [a, b, c]: [Expr; 3] = self
                        .args(scope, name, 3)?
                        .try_into()
                        .map_err(|_| arity_error(self, 3))?;
                    return Ok(if name == "fma" {
                        Expr::fma(a, b, c)
                    } else {
                        Expr::select(a, b, c)
                    });
                }
                Err(self.err(
                    pos,
                    format!("unknown name `{name}`: expected a literal, `iN`, `vN`, `bN[...]` or a function like `max(a, b)`"),
                ))
            }
            _ => Err(self.unexpected("an expression")),
        }
    }

    fn number_literal(&mut self, negative: bool) -> PResult<NumberLit<'a>> {
        let sign = if negative { "-" } else { "" };
        let lit = match self.peek.tok.clone() {
            Tok::Int(text) => NumberLit::Int(format!("{sign}{text}")),
            Tok::Float(text) => NumberLit::Float(format!("{sign}{text}")),
            Tok::Ident("inf") => NumberLit::Float(format!("{sign}inf")),
            Tok::Ident(kw @ ("nan" | "nan32")) if !negative => {
                self.bump();
                if kw == "nan" && !self.at_punct("(") {
                    return Ok(NumberLit::Nan);
                }
                self.expect_punct("(", &format!("after `{kw}` (`{kw}(0x...)`)"))?;
                let Tok::Hex(hex) = self.peek.tok else {
                    return Err(self.unexpected("a NaN bit pattern like `0x7fc00001`"));
                };
                self.bump();
                self.expect_punct(")", "to close the NaN bit pattern")?;
                return Ok(if kw == "nan" {
                    NumberLit::NanBits64(hex)
                } else {
                    NumberLit::NanBits32(hex)
                });
            }
            _ => {
                return Err(self.unexpected(if negative {
                    "a number after `-` (negate other expressions with `neg(x)`)"
                } else {
                    "a number"
                }))
            }
        };
        self.bump();
        Ok(lit)
    }

    /// Types a literal by its `:dtype` suffix (f32 for floats, i64 for integers without one).
    fn typed_literal(&mut self, lit: NumberLit<'a>, pos: usize) -> PResult<Expr> {
        let dtype = if self.eat_punct(":") {
            self.dtype()?
        } else {
            match lit {
                NumberLit::Int(_) => DType::I64,
                NumberLit::NanBits64(_) => DType::F64,
                _ => DType::F32,
            }
        };
        let bad = |p: &Self, what: &str| p.err(pos, format!("{what} is not a literal of {dtype}"));
        let scalar = match (dtype, &lit) {
            (DType::F32, NumberLit::Int(t) | NumberLit::Float(t)) => t
                .parse::<f32>()
                .map(Scalar::F32)
                .map_err(|_| bad(self, t))?,
            (DType::F64, NumberLit::Int(t) | NumberLit::Float(t)) => t
                .parse::<f64>()
                .map(Scalar::F64)
                .map_err(|_| bad(self, t))?,
            (DType::F32, NumberLit::Nan) => Scalar::F32(f32::NAN),
            (DType::F64, NumberLit::Nan) => Scalar::F64(f64::NAN),
            (DType::F32, NumberLit::NanBits32(hex)) => {
                let bits = u32::from_str_radix(hex, 16).map_err(|_| bad(self, hex))?;
                let x = f32::from_bits(bits);
                if !x.is_nan() {
                    return Err(self.err(pos, format!("0x{hex} is not a NaN bit pattern")));
                }
                Scalar::F32(x)
            }
            (DType::F64, NumberLit::NanBits64(hex)) => {
                let bits = u64::from_str_radix(hex, 16).map_err(|_| bad(self, hex))?;
                let x = f64::from_bits(bits);
                if !x.is_nan() {
                    return Err(self.err(pos, format!("0x{hex} is not a NaN bit pattern")));
                }
                Scalar::F64(x)
            }
            (int_dtype, NumberLit::Int(t)) if int_dtype.is_int() => {
                let value: i128 = t.parse().map_err(|_| bad(self, t))?;
                let out_of_range = || {
                    self.err(
                        pos,
                        format!("integer `{t}` is out of range for {int_dtype}"),
                    )
                };
                match int_dtype {
                    DType::I64 => Scalar::I64(i64::try_from(value).map_err(|_| out_of_range())?),
                    DType::I32 => Scalar::I32(i32::try_from(value).map_err(|_| out_of_range())?),
                    DType::I8 => Scalar::I8(i8::try_from(value).map_err(|_| out_of_range())?),
                    _ => Scalar::U8(u8::try_from(value).map_err(|_| out_of_range())?),
                }
            }
            (_, lit) => return Err(bad(self, &lit.describe())),
        };
        Ok(Expr::Const(scalar))
    }
}

enum Infix {
    Binary(BinaryOp),
    Cmp(CmpOp),
}

enum NumberLit<'a> {
    Int(String),
    Float(String),
    Nan,
    NanBits32(&'a str),
    NanBits64(&'a str),
}

impl NumberLit<'_> {
    fn describe(&self) -> String {
        match self {
            NumberLit::Int(t) | NumberLit::Float(t) => format!("`{t}`"),
            NumberLit::Nan => "`nan`".into(),
            NumberLit::NanBits32(h) => format!("`nan32(0x{h})`"),
            NumberLit::NanBits64(h) => format!("`nan(0x{h})`"),
        }
    }
}

/// [`Index::normalized`] with overflow checked (the text is user input): terms sorted by variable,
/// repeats merged, zero coefficients dropped.
fn normalize_checked(mut index: Index) -> Option<Index> {
    index.terms.sort_by_key(|&(var, _)| var);
    let mut merged: Vec<(LoopVar, i64)> = Vec::with_capacity(index.terms.len());
    for &(var, coeff) in &index.terms {
        match merged.last_mut() {
            Some((last, c)) if *last == var => *c = c.checked_add(coeff)?,
            _ => merged.push((var, coeff)),
        }
    }
    merged.retain(|&(_, c)| c != 0);
    index.terms = merged;
    Some(index)
}

/// `b12` with prefix `b` -> 12. Digits only, no leading zeros (so each id has one spelling).
fn parse_id(text: &str, prefix: char) -> Option<u32> {
    let digits = text.strip_prefix(prefix)?;
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

fn declare_local(
    parser: &Parser<'_>,
    scope: &mut KernelScope,
    id: u32,
    dtype: DType,
    pos: usize,
) -> PResult<()> {
    match scope.locals.get(&id) {
        Some(&(existing, _)) if existing != dtype => Err(parser.err(
            pos,
            format!("local v{id} was declared {existing} before; a local has one dtype"),
        )),
        Some(_) => Ok(()),
        None => {
            scope.locals.insert(id, (dtype, pos));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_one_spelling() {
        assert_eq!(parse_id("b0", 'b'), Some(0));
        assert_eq!(parse_id("b12", 'b'), Some(12));
        assert_eq!(parse_id("b012", 'b'), None);
        assert_eq!(parse_id("bx", 'b'), None);
        assert_eq!(parse_id("b", 'b'), None);
        assert_eq!(parse_id("i3", 'b'), None);
    }

    #[test]
    fn names_are_quoted_only_when_needed() {
        for (name, text) in [
            ("x", "x"),
            ("%3", "%3"),
            ("@conv1.weight", "@conv1.weight"),
            ("scratch.fc", "scratch.fc"),
            ("input:0", "\"input:0\""),
            ("%", "\"%\""),
            ("a\"b", "\"a\\\"b\""),
        ] {
            let mut out = String::new();
            write_name(&mut out, name);
            assert_eq!(out, text);
        }
    }

    #[test]
    fn ranges_are_not_floats() {
        let mut lexer = Lexer::new("0..8 1.5 2e3 0x1f");
        let toks: Vec<Tok> = std::iter::from_fn(|| {
            let t = lexer.next_token().tok;
            (t != Tok::Eof).then_some(t)
        })
        .collect();
        assert_eq!(
            toks,
            vec![
                Tok::Int("0"),
                Tok::Punct(".."),
                Tok::Int("8"),
                Tok::Float("1.5"),
                Tok::Float("2e3"),
                Tok::Hex("1f"),
            ]
        );
    }
}
