//! The baked component's snapshot stays mappable copy-on-write (`snapshot-span`, the check the
//! bake runs), and the check fails on a snapshot that is not.

use std::path::Path;
use std::process::{Command, Output};

use crate::host::Build;

/// Runs the snapshot check on a file.
fn check(wasm: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_snapshot-span")).arg(wasm).output().expect("run snapshot-span")
}

/// Appends `value` as unsigned LEB128.
fn leb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A component holding one core module whose data section has `(offset, len)` active segments
/// of non-zero bytes in memory 0 (`i32.const offset`), written to a scratch file.
fn component_with_segments(name: &str, segments: &[(u32, usize)]) -> std::path::PathBuf {
    let mut data = Vec::new();
    leb(&mut data, segments.len() as u64);
    for &(offset, len) in segments {
        data.push(0); // active, memory 0
        data.push(0x41); // i32.const, signed LEB128 (offsets here stay under 2^31)
        let mut offset = offset;
        loop {
            let byte = (offset & 0x7f) as u8;
            offset >>= 7;
            if offset == 0 && byte & 0x40 == 0 {
                data.push(byte);
                break;
            }
            data.push(byte | 0x80);
        }
        data.push(0x0b);
        leb(&mut data, len as u64);
        data.extend(std::iter::repeat_n(1u8, len));
    }
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    module.push(11);
    leb(&mut module, data.len() as u64);
    module.extend(data);
    let mut component = b"\0asm\x0d\0\x01\0".to_vec();
    component.push(1);
    leb(&mut component, module.len() as u64);
    component.extend(module);
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.wasm"));
    std::fs::write(&path, component).expect("write a synthetic component");
    path
}

#[test]
fn the_baked_snapshot_is_mapped_copy_on_write() {
    let wasm = Build::Baked.wasm();
    let out = check(&wasm);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprint!("{stdout}");
    assert!(
        out.status.success(),
        "`{}`: wasmtime would copy its snapshot into every instance instead of mapping it: \
         {stdout}{}",
        wasm.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("mapped copy-on-write"), "{stdout}");
}

#[test]
fn a_sparse_snapshot_fails_the_check() {
    const MIB: u32 = 1 << 20;
    // Spans of 16 MiB + 1 byte holding 2 bytes of data: copied by wasmtime, so refused.
    let sparse = component_with_segments("sparse", &[(0, 1), (16 * MIB, 1)]);
    let out = check(&sparse);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("NOT mapped"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("too sparse"));

    // Just under 16 MiB, or over it but at least half data: mapped.
    let small = component_with_segments("small", &[(0, 1), (16 * MIB - 2, 1)]);
    assert!(check(&small).status.success());
    let dense = component_with_segments("dense", &[(0, 9 << 20), (17 * MIB, 1)]);
    assert!(check(&dense).status.success());

    // Not a component at all: an error, not a pass.
    let junk = Path::new(env!("CARGO_TARGET_TMPDIR")).join("junk.wasm");
    std::fs::write(&junk, b"not wasm").expect("write");
    assert_eq!(check(&junk).status.code(), Some(2));
}
