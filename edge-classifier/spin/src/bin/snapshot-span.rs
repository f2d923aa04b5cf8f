//! `snapshot-span FILE.wasm`: checks that wasmtime will map a baked component's memory snapshot
//! copy-on-write, and fails naming the module and the figures when it will not.
//!
//! Why: wasmtime turns a module's data segments into one copy-on-write memory image (a fresh
//! instance then costs microseconds) only while, for each memory, the initialised span (lowest
//! to highest initialised byte) is under 16 MiB (`memory_guaranteed_dense_image_size`) or under
//! twice the data (wasmtime-environ `try_static_init`). Otherwise it copies the segments into
//! every instance, and a fresh request here took 11-25 ms instead of about 1. The span grows
//! with the bundle, so `scripts/build-edge.sh bake` and the component's tests run this on every
//! baked component. It is a native binary (std only) so that baking needs no Rust compile.
//!
//! Prints one line per memory with data and exits 0 when every one is mapped, 1 otherwise, and
//! 2 when the file cannot be read or parsed.

use std::process::ExitCode;

/// wasmtime's `memory_guaranteed_dense_image_size` default: a span under this is always mapped.
const ALWAYS_MAPPED: u64 = 16 << 20;

/// Section ids: a core module inside a component, a nested component, a core data section.
const COMPONENT_CORE_MODULE: u8 = 1;
const COMPONENT_COMPONENT: u8 = 4;
const MODULE_DATA: u8 = 11;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!("usage: snapshot-span FILE.wasm");
        return ExitCode::from(2);
    };
    let spans = match std::fs::read(path)
        .map_err(|e| format!("cannot read `{path}`: {e}"))
        .and_then(|bytes| spans(&bytes).map_err(|e| format!("`{path}`: {e}")))
    {
        Ok(spans) => spans,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if spans.is_empty() {
        eprintln!("error: `{path}` has no initialised memory: is it a baked component?");
        return ExitCode::from(2);
    }
    let mut all_mapped = true;
    for span in &spans {
        let mapped = span.mapped();
        all_mapped &= mapped;
        println!(
            "snapshot: core module {} memory {}: {} bytes of data over a span of {} bytes: {}",
            span.module,
            span.memory,
            span.data,
            span.span(),
            if mapped {
                "mapped copy-on-write"
            } else {
                "NOT mapped: over 16 MiB and under half data, so wasmtime copies it into \
                 every instance (a fresh request then takes 10-25 ms)"
            }
        );
    }
    if all_mapped {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "error: `{path}`'s snapshot is too sparse for copy-on-write; shrink the bundle or \
             pack the pre-init heap (edge-classifier/spin/src/component/heap.rs)"
        );
        ExitCode::FAILURE
    }
}

/// The initialised extent of one memory of one core module.
struct Span {
    /// Which core module of the component, in file order (0 is the main one).
    module: usize,
    /// The memory index.
    memory: u32,
    /// Bytes of data in its segments.
    data: u64,
    /// Lowest initialised address.
    low: u64,
    /// One past the highest initialised address.
    high: u64,
}

impl Span {
    fn span(&self) -> u64 {
        self.high - self.low
    }

    /// wasmtime's condition for a copy-on-write image.
    fn mapped(&self) -> bool {
        self.span() < ALWAYS_MAPPED || self.span() < self.data.saturating_mul(2)
    }
}

/// Every memory with data in every core module of a component (or of a core module).
fn spans(bytes: &[u8]) -> Result<Vec<Span>, String> {
    let mut modules = Vec::new();
    core_modules(bytes, &mut modules)?;
    let mut out = Vec::new();
    for (index, module) in modules.into_iter().enumerate() {
        for (id, body) in sections(module)? {
            if id == MODULE_DATA {
                data_spans(index, body, &mut out).map_err(|e| format!("core module {index}'s data section: {e}"))?;
            }
        }
    }
    Ok(out)
}

/// Collects the core modules of `bytes`: itself if it is one, else those of the component and
/// of its nested components.
fn core_modules<'a>(bytes: &'a [u8], out: &mut Vec<&'a [u8]>) -> Result<(), String> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => out.push(bytes),
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => {
            for (id, body) in sections(bytes)? {
                match id {
                    COMPONENT_CORE_MODULE => out.push(body),
                    COMPONENT_COMPONENT => core_modules(body, out)?,
                    _ => {}
                }
            }
        }
        _ => return Err("not a wasm module or component".to_owned()),
    }
    Ok(())
}

/// The `(id, body)` of each section after the 8-byte preamble.
fn sections(bytes: &[u8]) -> Result<Vec<(u8, &[u8])>, String> {
    let mut reader = Reader { bytes, at: 8 };
    let mut out = Vec::new();
    while reader.at < bytes.len() {
        let id = reader.byte()?;
        let size = reader.length()?;
        out.push((id, reader.take(size)?));
    }
    Ok(out)
}

/// Adds one [`Span`] per memory that the active segments of a data section initialise.
fn data_spans(module: usize, body: &[u8], out: &mut Vec<Span>) -> Result<(), String> {
    let mut reader = Reader { bytes: body, at: 0 };
    let first = out.len();
    for _ in 0..reader.u32()? {
        let (memory, active) = match reader.u32()? {
            0 => (0, true),
            1 => (0, false),
            2 => (reader.u32()?, true),
            flag => return Err(format!("unknown segment flag {flag}")),
        };
        let offset = if active {
            // wizer writes `i32.const N end` (or `i64.const` for a 64-bit memory); anything
            // else wasmtime cannot place at compile time either, so it is an error here too.
            let offset = match reader.byte()? {
                0x41 => reader.signed()? as u32 as u64,
                0x42 => reader.signed()? as u64,
                op => return Err(format!("offset expression starts with opcode {op:#04x}")),
            };
            if reader.byte()? != 0x0b {
                return Err("offset expression is not a single constant".to_owned());
            }
            Some(offset)
        } else {
            None
        };
        let size = reader.length()?;
        reader.take(size)?;
        let (Some(offset), true) = (offset, size > 0) else {
            continue;
        };
        let size = size as u64;
        let end = offset.checked_add(size).ok_or("a segment ends past 2^64")?;
        match out[first..].iter_mut().find(|s| s.memory == memory) {
            Some(span) => {
                span.data += size;
                span.low = span.low.min(offset);
                span.high = span.high.max(end);
            }
            None => out.push(Span { module, memory, data: size, low: offset, high: end }),
        }
    }
    Ok(())
}

/// A cursor over LEB128-encoded wasm.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let byte = *self.bytes.get(self.at).ok_or_else(|| format!("truncated at byte {}", self.at))?;
        self.at += 1;
        Ok(byte)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| format!("{len} bytes at byte {} run past the end", self.at))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let mut value = 0u64;
        for shift in (0..35).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return u32::try_from(value).map_err(|_| format!("{value} is over u32"));
            }
        }
        Err(format!("a u32 runs past 5 bytes at byte {}", self.at))
    }

    fn length(&mut self) -> Result<usize, String> {
        Ok(self.u32()? as usize)
    }

    fn signed(&mut self) -> Result<i64, String> {
        let (mut value, mut shift) = (0i64, 0u32);
        loop {
            let byte = self.byte()?;
            if shift >= 64 {
                return Err(format!("a signed constant runs past 10 bytes at byte {}", self.at));
            }
            value |= i64::from(byte & 0x7f) << shift;
            shift += 7;
            if byte < 0x80 {
                if shift < 64 && byte & 0x40 != 0 {
                    value |= -1i64 << shift;
                }
                return Ok(value);
            }
        }
    }
}
