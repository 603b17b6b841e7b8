//! The streaming attention kernel compiled by the JIT, on shapes the random properties reach only
//! rarely: several full blocks of 64 queries and keys run in parallel with a partial block after
//! them, causal with `Sq` above and below `Skv`, a mask that hides whole rows, and the large-mean
//! rows of a layer norm. Compared with the reference interpreter at rtol 1e-4, atol 1e-5.

use sinter_ir::rng::SplitMix64;
use sinter_ir::text::{parse_graph, ParseOptions};
use sinter_ir::{DType, Graph, Tensor, TensorData};
use sinter_jit::{compile, CompileOptions};
use sinter_ref::compare::{compare, Tolerance};

const TOL: Tolerance = Tolerance {
    rtol: 1e-4,
    atol: 1e-5,
};

fn graph(text: &str) -> Graph {
    parse_graph(text, &ParseOptions::default()).expect("the test graph parses")
}

/// Values spread like N(0, 1) (uniform with unit variance) around `mean`.
fn data(rng: &mut SplitMix64, shape: &[usize], mean: f64) -> Tensor {
    let len: usize = shape.iter().product();
    let values = (0..len).map(|_| mean + rng.uniform(-1.73, 1.73));
    Tensor::new(shape.to_vec(), TensorData::from_f64s(DType::F32, values)).unwrap()
}

/// Runs `graph` on `inputs` with the JIT on one and two threads and checks both against the
/// reference; returns the two-thread output.
fn check(graph: &Graph, inputs: &[(&str, Tensor)]) -> Tensor {
    let expected = sinter_ref::run(graph, inputs)
        .expect("reference")
        .remove(0)
        .1;
    let borrowed: Vec<(&str, &Tensor)> = inputs.iter().map(|(n, t)| (*n, t)).collect();
    let mut last = None;
    for threads in [1, 2] {
        let options = CompileOptions {
            threads: Some(threads),
            ..CompileOptions::default()
        };
        let model = compile(graph.clone(), &options).expect("compile");
        let actual = model.run(&borrowed).expect("run").remove(0).1;
        let verdict = compare(&actual, &expected, TOL);
        assert!(verdict.matches(), "{} threads: {verdict}", threads);
        last = Some(actual);
    }
    last.expect("two runs")
}

#[test]
fn causal_attention_over_several_blocks_matches_the_reference() {
    for (sq, skv) in [(200, 200), (150, 260), (260, 130)] {
        let text = format!(
            "graph a {{\n  input %q: f32[2,4,{sq},16]\n  input %k: f32[2,2,{skv},16]\n  \
             input %v: f32[2,2,{skv},8]\n  %0: f32[2,4,{sq},8] = attention(%q, %k, %v) {{causal=true}}\n  \
             output y = %0\n}}\n"
        );
        let g = graph(&text);
        let mut rng = SplitMix64::new(sq as u64);
        let inputs = [
            ("q", data(&mut rng, &[2, 4, sq, 16], 0.0)),
            ("k", data(&mut rng, &[2, 2, skv, 16], 0.0)),
            ("v", data(&mut rng, &[2, 2, skv, 8], 0.0)),
        ];
        check(&g, &inputs);
    }
}

#[test]
fn attention_with_a_head_size_of_64_and_a_float_mask_matches_the_reference() {
    let g = graph(
        "graph a {\n  input %q: f32[1,200,128]\n  input %k: f32[1,130,128]\n  input %v: f32[1,130,128]\n  \
         input %m: f32[200,130]\n  %0: f32[1,200,128] = attention(%q, %k, %v, %m) {q_num_heads=2, kv_num_heads=2, softcap=4.0}\n  \
         output y = %0\n}\n",
    );
    let mut rng = SplitMix64::new(64);
    let inputs = [
        ("q", data(&mut rng, &[1, 200, 128], 0.0)),
        ("k", data(&mut rng, &[1, 130, 128], 0.0)),
        ("v", data(&mut rng, &[1, 130, 128], 0.0)),
        ("m", data(&mut rng, &[200, 130], 0.0)),
    ];
    check(&g, &inputs);
}

#[test]
fn rows_the_mask_hides_entirely_are_nan_like_the_reference() {
    let g = graph(
        "graph a {\n  input %q: f32[1,1,130,4]\n  input %k: f32[1,1,130,4]\n  input %v: f32[1,1,130,4]\n  \
         input %m: bool[130,130]\n  %0: f32[1,1,130,4] = attention(%q, %k, %v, %m)\n  output y = %0\n}\n",
    );
    let mut rng = SplitMix64::new(5);
    // Row 2 keeps no key, row 70 only key 100 (in the second key block).
    let mut keep = vec![true; 130 * 130];
    keep[2 * 130..3 * 130].fill(false);
    keep[70 * 130..71 * 130].fill(false);
    keep[70 * 130 + 100] = true;
    let inputs = [
        ("q", data(&mut rng, &[1, 1, 130, 4], 0.0)),
        ("k", data(&mut rng, &[1, 1, 130, 4], 0.0)),
        ("v", data(&mut rng, &[1, 1, 130, 4], 0.0)),
        (
            "m",
            Tensor::new(vec![130, 130], TensorData::Bool(keep.into())).unwrap(),
        ),
    ];
    let y = check(&g, &inputs).to_f64_vec();
    assert!(y[2 * 4..3 * 4].iter().all(|x| x.is_nan()));
    assert!(y[70 * 4..71 * 4].iter().all(|x| x.is_finite()));
}

#[test]
fn layer_norm_of_rows_with_a_large_mean_matches_the_reference() {
    let g = graph(
        "graph n {\n  input %x: f32[16,768]\n  input %s: f32[768]\n  input %b: f32[768]\n  \
         %0: f32[16,768] = layer_norm(%x, %s, %b) {axis=-1}\n  output y = %0\n}\n",
    );
    let mut rng = SplitMix64::new(1000);
    for mean in [1000.0, -3000.0, 0.0] {
        let inputs = [
            ("x", data(&mut rng, &[16, 768], mean)),
            ("s", data(&mut rng, &[768], 0.0)),
            ("b", data(&mut rng, &[768], 0.0)),
        ];
        check(&g, &inputs);
    }
}
