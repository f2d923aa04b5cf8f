//! The baked component's snapshot stays mappable copy-on-write (the check every bake runs;
//! its verdicts on synthetic sparse and dense components are `edge_classifier_bake`'s unit
//! tests).

use crate::host::Build;

#[test]
fn the_baked_snapshot_is_mapped_copy_on_write() {
    let wasm = Build::Baked.wasm();
    let bytes = std::fs::read(&wasm).unwrap_or_else(|e| panic!("`{}`: {e}", wasm.display()));
    let spans = edge_classifier_bake::spans(&bytes).expect("a baked component has a snapshot");
    for span in &spans {
        eprintln!("snapshot: {span}");
        assert!(
            span.mapped(),
            "`{}`: wasmtime would copy its snapshot into every instance instead of mapping it: {span}",
            wasm.display()
        );
    }
}
