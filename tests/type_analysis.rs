//! Golden tests of the type analysis (`analysis::types`): what each value of the
//! function being differentiated holds, byte by byte, through pointers. Four shapes
//! the shadow memory must follow: a struct object holding arrays (a model), a struct
//! holding mutable structs (layers held by reference, Julia's layout sent as a tree), a
//! comprehension (an array the function allocates and fills), and a closure that
//! reassigns a captured variable (a `Core.Box` holding a boxed `Float64`).
//! `OXIDASE_BLESS=1 cargo test --test type_analysis` rewrites the golden files after a
//! deliberate change; read the diff.

mod common;
use common::*;
use oxidase::request::{Activity::*, ArgSpec, Layout, Passing};
use oxidase::stage::{collect, Printed};

/// The type analysis of the entry of fixture `name` when differentiated in reverse mode
/// with arguments `args` (the derivative itself may be refused: the analysis runs
/// first), and whether the derivative was built.
fn types_of(name: &str, args: Vec<ArgSpec>) -> (String, bool) {
    let (r, texts) = collect(Printed::Types, || synthesize_fixture(name, args));
    if let Err(e) = &r {
        eprintln!("{name}: the derivative is refused: {e}");
    }
    let entry_types = texts.into_iter().next().unwrap_or_else(|| panic!("{name}: no type analysis ran: {r:?}"));
    (entry_types, r.is_ok())
}

fn golden(name: &str, text: &str) {
    let path = format!("{}/tests/golden/{name}.txt", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("OXIDASE_BLESS").is_some() {
        std::fs::write(&path, text).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        text == expected,
        "the type analysis of {name} changed: rerun with OXIDASE_BLESS=1 if that is intended\n--- now ---\n{text}"
    );
}

/// The lines of `text` that print an instruction containing `needle`, with their trees.
fn trees_of<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = text.lines().collect();
    lines.windows(2).filter(|w| w[0].contains(needle)).map(|w| w[1].trim()).collect()
}

/// `mutable struct Affine; w::Vector{Float64}; b::Vector{Float64}; end`, differentiated
/// as a whole (`Duplicated(model, dmodel)`): Julia says which fields are arrays of
/// floats; the analysis follows each field to its array object and its data.
#[test]
fn struct_of_arrays_model() {
    let model = ArgSpec {
        passing: Passing::Boxed,
        activity: Duplicated,
        type_tree: vec![(
            0,
            Layout::Object(vec![(0, Layout::array_of(Layout::F64)), (8, Layout::array_of(Layout::F64))]),
        )],
    };
    let (text, built) = types_of("types_model", vec![ghost(), model, array_arg(Duplicated)]);
    assert!(built, "the model's derivative is built");
    golden("types_model", &text);
    // The model (`%arg1`, loaded from the derivative's arguments): two pointers to
    // array objects whose data holds Float64s.
    let model = trees_of(&text, "%arg1 = ")[0];
    for path in ["[0,0]:ptr", "[0,0,0]:ptr", "[0,0,0,*]:f64", "[0,8]:ptr", "[0,8,0]:ptr", "[0,8,0,*]:f64"] {
        assert!(model.contains(path), "{path} in {model}");
    }
}

/// `struct N; a::L; b::L; end` holding two `mutable struct L; w::Vector{Float64};
/// s::Float64; n::Int; end`, differentiated as a whole: Julia's layout of `N` is a tree
/// (an object holding two objects, each holding an array, a float and an integer), and
/// the analysis follows it to each layer's array data, its `Float64` and its integer.
#[test]
fn struct_holding_mutable_structs() {
    let layer = Layout::Object(vec![(0, Layout::array_of(Layout::F64)), (8, Layout::F64), (16, Layout::Integer)]);
    let model = ArgSpec {
        passing: Passing::Boxed,
        activity: Duplicated,
        type_tree: vec![(0, Layout::Object(vec![(0, layer.clone()), (8, layer)]))],
    };
    let (text, built) = types_of("types_nested", vec![ghost(), model]);
    assert!(built, "the nested model's derivative is built");
    golden("types_nested", &text);
    let model = trees_of(&text, "%arg1 = ")[0];
    for layer in ["0", "8"] {
        for path in ["[0,L]:ptr", "[0,L,0]:ptr", "[0,L,0,0]:ptr", "[0,L,0,0,*]:f64", "[0,L,8]:f64", "[0,L,16]:int"] {
            let path = path.replace('L', layer);
            assert!(model.contains(&path), "{path} in {model}");
        }
    }
}

/// `comprehension(x) = sum([2v for v in x])`: the array the comprehension allocates is
/// known to hold Float64s from the stores that fill it, not from Julia.
#[test]
fn comprehension() {
    let (text, built) = types_of("types_comprehension", vec![ghost(), array_arg(Duplicated)]);
    assert!(built, "the comprehension's derivative is built");
    golden("types_comprehension", &text);
    let allocations = trees_of(&text, "@jl_alloc_array_1d");
    assert!(!allocations.is_empty(), "the comprehension allocates an array");
    for t in allocations {
        assert!(t.contains("[0,0,*]:f64") && t.contains("[0,8]:int"), "{t}");
    }
}

/// A closure that reassigns a captured `s` (`add!(v) = (s += v)`): `s` lives in a
/// `Core.Box`, a heap object whose field points to a boxed `Float64`.
#[test]
fn closure_with_a_box() {
    let (text, _) = types_of("types_box", vec![ghost(), array_arg(Duplicated)]);
    golden("types_box", &text);
    let boxes = trees_of(&text, "@jl_gc_pool_alloc");
    assert!(!boxes.is_empty(), "the closure allocates its box");
    assert!(boxes.iter().any(|t| t.contains("[0,0]:ptr") && t.contains("[0,0,0]:f64")), "{boxes:?}");
}
