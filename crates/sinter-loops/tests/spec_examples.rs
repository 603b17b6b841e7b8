//! Every ```` ```sloop ```` block in `ir-spec/loops.md` parses, verifies, and is written exactly as the
//! printer writes it (full-line `;` comments aside), so the specification cannot drift from the code.
//! Kernel examples also run through the interpreter on zero inputs, so an example that would fail at
//! run time (a status, an interpreter error) fails here.

use sinter_ir::{DType, Tensor, TensorData};
use sinter_loops::interp::run_kernel;
use sinter_loops::text::{parse_kernel, parse_program, print_kernel, print_program};
use sinter_loops::verify::{verify_kernel, verify_program};

const SPEC: &str = include_str!("../../../ir-spec/loops.md");

/// The ```sloop blocks of `text`, with the line each starts on.
fn sloop_blocks(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (idx, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim() == "```sloop" => current = Some((idx + 2, String::new())),
            None => {}
            Some(_) if line.trim() == "```" => blocks.extend(current.take()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    assert!(current.is_none(), "an unterminated ```sloop block");
    blocks
}

fn without_comment_lines(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with(';'))
        .map(|line| format!("{line}\n"))
        .collect()
}

#[test]
fn every_sloop_example_parses_verifies_and_round_trips() {
    let blocks = sloop_blocks(SPEC);
    assert!(blocks.len() >= 6, "found only {} examples", blocks.len());
    for (line, block) in blocks {
        let context = format!("ir-spec/loops.md, the example on line {line}");
        if without_comment_lines(&block)
            .trim_start()
            .starts_with("program")
        {
            // Spec programs have no weights.
            let program = parse_program(&block, &|_| None::<Tensor>)
                .unwrap_or_else(|err| panic!("{context}:\n{}", err.render(&block)));
            verify_program(&program).unwrap_or_else(|errs| panic!("{context}: {errs:#?}"));
            assert_eq!(
                print_program(&program),
                without_comment_lines(&block),
                "{context}"
            );
            continue;
        }
        let kernel =
            parse_kernel(&block).unwrap_or_else(|err| panic!("{context}:\n{}", err.render(&block)));
        verify_kernel(&kernel).unwrap_or_else(|errs| panic!("{context}: {errs:#?}"));
        assert_eq!(
            print_kernel(&kernel),
            without_comment_lines(&block),
            "{context}"
        );
        assert_eq!(
            parse_kernel(&print_kernel(&kernel)).unwrap(),
            kernel,
            "{context}"
        );
        let mut buffers: Vec<TensorData> = kernel
            .buffers
            .iter()
            .map(|decl| TensorData::zeros(decl.dtype, decl.len))
            .collect();
        let status =
            run_kernel(&kernel, &mut buffers).unwrap_or_else(|err| panic!("{context}: {err}"));
        assert_eq!(status, 0, "{context}");
    }
}

#[test]
fn the_relu_example_computes_relu() {
    let (_, block) = sloop_blocks(SPEC)
        .into_iter()
        .find(|(_, block)| block.contains("kernel relu_1"))
        .expect("the relu example");
    let kernel = parse_kernel(&block).unwrap();
    let x = [-2.0f32, -0.5, 0.0, 0.5, 1.0, -0.0, 3.0, -7.0];
    let mut buffers = vec![
        TensorData::from_f64s(DType::F32, x.iter().map(|&v| f64::from(v))),
        TensorData::zeros(DType::F32, 8),
    ];
    assert_eq!(run_kernel(&kernel, &mut buffers).unwrap(), 0);
    let actual: Vec<f64> = (0..8).map(|idx| buffers[1].get_f64(idx)).collect();
    let expected: Vec<f64> = x.iter().map(|v| f64::from(v.max(0.0))).collect();
    assert_eq!(actual, expected);
}
