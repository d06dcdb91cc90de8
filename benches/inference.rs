//! In-process benchmarks: a prediction natively on tract, the same in the wasm guest and in
//! the wasi-nn flavour (the graph run natively behind `wasi:nn`), and a fresh instance with
//! and without the parsed model in its snapshot.
//!
//! Needs the guest components (`cargo build --profile guest --target wasm32-wasip2 -p
//! wafer-guest`, and `-p wafer-guest-nn` by a second invocation); `tools/bench.sh` builds
//! them, runs this, and prints the ratios.
//!
//! Its runtimes make no instance ahead of a call, nor drop one after it (`PoolLimits::make_ahead`):
//! a loop of calls leaves no idle time for it, so the next instance would be made, or the last
//! dropped, on another thread while a call is timed; without, what is timed is the call alone.
//!
//! With `paired` among its arguments (`cargo bench --bench inference -- paired`), it also
//! measures the wasi-nn flavour against native tract with the two taking turns, block by
//! block, and prints the median of the rounds' ratios: criterion measures one side for
//! seconds, then the other, and a slow spell of a shared machine falls on one side only. A
//! third side, a call the guest refuses before it runs anything, gives the floor under any
//! prediction in a fresh instance.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_main};
use wafer_host::runtime::build::{Backend, BuildOptions, Builder, find_guest};
use wafer_host::runtime::nn::NativeGraph;
use wafer_host::runtime::{LoadedModel, PoolLimits, Runtime};
use wafer_scoring::{Model, Tensor, TensorData};

const MODELS: [&str; 3] = ["iris", "digits", "digits_wide"];

/// The pool's limits, with no instance made ahead.
fn limits() -> PoolLimits {
    PoolLimits {
        make_ahead: false,
        ..PoolLimits::default()
    }
}

fn models_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")
}

/// The first test row of a model, as its input tensor.
fn first_row(model: &str) -> Tensor {
    let text = std::fs::read_to_string(models_dir().join(model).join("test_inputs.json"))
        .expect("test inputs");
    let inputs: serde_json::Value = serde_json::from_str(&text).expect("json");
    let row: Vec<f32> = inputs["data"][0]
        .as_array()
        .expect("row")
        .iter()
        .map(|v| v.as_f64().expect("number") as f32)
        .collect();
    let name = inputs["input"].as_str().expect("input name");
    Tensor::new(name, vec![1, row.len()], TensorData::F32(row)).expect("tensor")
}

fn load(
    rt: &tokio::runtime::Runtime,
    runtime: &Runtime,
    model: &str,
    snapshot: bool,
    backend: Backend,
) -> LoadedModel {
    let guest = find_guest(None).expect("the guest component is built");
    let builder = Builder::new(&BuildOptions {
        guest,
        lookup_guest: None,
        snapshot,
        backend,
        shared: false,
        functions: wafer_host::runtime::cache::FunctionCache::shared(),
        cache: None,
    })
    .expect("builder");
    let onnx = std::fs::read(models_dir().join(model).join("model.onnx")).expect("model");
    let graph = (backend == Backend::WasiNn)
        .then(|| NativeGraph::load(model, &onnx).expect("native graph"));
    rt.block_on(async {
        let wasm = builder.build(model, &onnx, None).await.expect("build");
        runtime
            .load_with_graph(model, &wasm, graph)
            .await
            .expect("load")
    })
}

/// The name of an input no model has: the guest refuses it before it runs anything.
const REFUSED: &str = "refused";

/// `x` under the name [`REFUSED`].
fn refused(x: &Tensor) -> Tensor {
    Tensor::new(REFUSED, x.shape().to_vec(), x.data().clone()).expect("tensor")
}

/// Time inside the component's predict only, as the host measures it per invocation. Each
/// call must succeed, or, when `x` is [`refused`], fail: the guest refuses it before its first
/// `wasi:nn` call or model code, so that call costs what any call into a fresh instance
/// costs, the floor under a prediction.
fn guest_time(
    rt: &tokio::runtime::Runtime,
    model: &Arc<LoadedModel>,
    x: &Tensor,
    iters: u64,
) -> Duration {
    let refused = x.name() == REFUSED;
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let (out, m) = rt.block_on(model.predict(vec![x.clone()], &[]));
        match out {
            Ok(_) => assert!(!refused, "the guest took an input named {REFUSED:?}"),
            Err(e) => assert!(refused && e.to_string().contains(REFUSED), "{e}"),
        }
        total += m.guest;
    }
    total
}

fn inference(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let runtime = Runtime::new(limits(), None).expect("runtime");
    let mut group = c.benchmark_group("predict");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for model in MODELS {
        let x = first_row(model);
        let onnx = std::fs::read(models_dir().join(model).join("model.onnx")).expect("model");
        let native = Model::load(model, &onnx).expect("native load");
        group.bench_function(format!("{model}/native"), |b| {
            b.iter(|| {
                native
                    .predict(vec![x.clone()], &[])
                    .expect("native predict")
            })
        });
        let wasm = Arc::new(load(&rt, &runtime, model, true, Backend::Guest));
        group.bench_function(format!("{model}/guest"), |b| {
            b.iter_custom(|iters| guest_time(&rt, &wasm, &x, iters))
        });
        let nn = Arc::new(load(&rt, &runtime, model, true, Backend::WasiNn));
        group.bench_function(format!("{model}/wasi-nn"), |b| {
            b.iter_custom(|iters| guest_time(&rt, &nn, &x, iters))
        });
        let refused = refused(&x);
        group.bench_function(format!("{model}/wasi-nn/refused"), |b| {
            b.iter_custom(|iters| guest_time(&rt, &nn, &refused, iters))
        });
        // The same call on one instance kept for every iteration: what is left once the fresh
        // instance's first touch of its memory is paid.
        for (flavour, loaded) in [("guest", &wasm), ("wasi-nn", &nn)] {
            let mut session = loaded.session();
            group.bench_function(format!("{model}/{flavour}/one-instance"), |b| {
                b.iter(|| {
                    rt.block_on(session.predict(vec![x.clone()], &[]))
                        .expect("predict")
                })
            });
        }
        // What a request costs: a fresh instance from the snapshot, then predict.
        group.bench_function(format!("{model}/instance+predict"), |b| {
            b.iter(|| {
                rt.block_on(wasm.predict(vec![x.clone()], &[]))
                    .0
                    .expect("wasm predict")
            })
        });
    }
    // The largest model without the parsed model in its snapshot: every instance parses it.
    let model = "digits_wide";
    let x = first_row(model);
    let unparsed = Arc::new(load(&rt, &runtime, model, false, Backend::Guest));
    group.sample_size(10);
    group.bench_function(format!("{model}/instance+predict/no-snapshot"), |b| {
        b.iter(|| {
            rt.block_on(unparsed.predict(vec![x.clone()], &[]))
                .0
                .expect("wasm predict")
        })
    });
    group.finish();
}

/// Rounds of the paired measurement, and how long each side's block runs.
const ROUNDS: usize = 31;
const BLOCK: Duration = Duration::from_millis(30);

/// The wasi-nn flavour's predict (in a fresh instance, inside the call, as above) against
/// native tract, the two taking turns block by block with the refused call ([`refused`]);
/// prints a Markdown table of medians. The floor is what a prediction would cost if crossing
/// into a fresh instance cost no more than a refused call and the model ran there as fast as
/// native tract: the refused call and native tract, over native tract.
fn paired(_: &mut Criterion) {
    if !std::env::args().any(|a| a == "paired") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let runtime = Runtime::new(limits(), None).expect("runtime");
    println!(
        "| model | native tract | wasi-nn predict | wasi-nn / native (median of rounds) | \
         rounds' ratios, quartiles | refused call | floor: (refused + native) / native |"
    );
    println!("|---|---|---|---|---|---|---|");
    for model in MODELS {
        let x = first_row(model);
        let refused = refused(&x);
        let onnx = std::fs::read(models_dir().join(model).join("model.onnx")).expect("model");
        let native = Model::load(model, &onnx).expect("native load");
        let nn = Arc::new(load(&rt, &runtime, model, true, Backend::WasiNn));
        let native_time = |iters: u64| {
            let started = std::time::Instant::now();
            for _ in 0..iters {
                native
                    .predict(vec![x.clone()], &[])
                    .expect("native predict");
            }
            started.elapsed()
        };
        // Each side: its time for `iters` calls, and how many calls fill a block (from a
        // warm-up of 200).
        let sides: [&dyn Fn(u64) -> Duration; 3] = [
            &native_time,
            &|iters| guest_time(&rt, &nn, &x, iters),
            &|iters| guest_time(&rt, &nn, &refused, iters),
        ];
        let per_call = |time: Duration, iters: u64| time.as_secs_f64() / iters as f64;
        let block: Vec<u64> = sides
            .iter()
            .map(|side| (BLOCK.as_secs_f64() / per_call(side(200), 200)) as u64)
            .collect();
        let mut rounds: [Vec<f64>; 5] = Default::default();
        for round in 0..ROUNDS {
            // Rotate which side goes first, so that a drift within a round cancels out.
            let mut times = [0.0; 3];
            for k in 0..sides.len() {
                let side = (round + k) % sides.len();
                times[side] = per_call(sides[side](block[side]), block[side]);
            }
            let [native, nn, refused] = times;
            let measured = [
                native,
                nn,
                refused,
                nn / native,
                (refused + native) / native,
            ];
            for (all, value) in rounds.iter_mut().zip(measured) {
                all.push(value);
            }
        }
        let quantile = |v: &mut Vec<f64>, q: f64| {
            v.sort_by(f64::total_cmp);
            v[((v.len() - 1) as f64 * q).round() as usize]
        };
        let [natives, nns, refuseds, ratios, floors] = &mut rounds;
        println!(
            "| {model} | {:.1} µs | {:.1} µs | **{:.2}×** | {:.2}–{:.2} | {:.1} µs | {:.2}× |",
            quantile(natives, 0.5) * 1e6,
            quantile(nns, 0.5) * 1e6,
            quantile(ratios, 0.5),
            quantile(ratios, 0.25),
            quantile(ratios, 0.75),
            quantile(refuseds, 0.5) * 1e6,
            quantile(floors, 0.5),
        );
    }
}

/// The benchmark group (in a module of its own: the macro's `pub fn` carries no docs).
mod group {
    criterion::criterion_group!(benches, super::inference, super::paired);
}

criterion_main!(group::benches);
