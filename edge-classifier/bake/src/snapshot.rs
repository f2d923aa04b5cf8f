//! Whether wasmtime will map a baked component's memory snapshot copy-on-write.
//!
//! wasmtime turns a module's data segments into one copy-on-write memory image (a fresh
//! instance then costs microseconds) only while, for each memory, the initialised span (lowest
//! to highest initialised byte) is under 16 MiB (`memory_guaranteed_dense_image_size`) or under
//! twice the data (wasmtime-environ's `try_static_init`). Otherwise it copies the segments
//! into every instance, and a fresh request here took 11–25 ms instead of about 1. The span
//! grows with the bundle, so every bake checks it.

use wasmparser::{DataKind, Encoding, Operator, Parser, Payload};

/// wasmtime's `memory_guaranteed_dense_image_size` default: a span under this is always mapped.
pub const ALWAYS_MAPPED: u64 = 16 << 20;

/// The initialised extent of one memory of one core module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Which core module of the component, in file order (0 is the first).
    pub module: usize,
    /// The memory index.
    pub memory: u32,
    /// Bytes of data in its active segments.
    pub data: u64,
    /// Lowest initialised address.
    pub low: u64,
    /// One past the highest initialised address.
    pub high: u64,
}

impl Span {
    /// From the lowest to one past the highest initialised byte.
    pub fn span(&self) -> u64 {
        self.high - self.low
    }

    /// wasmtime's condition for a copy-on-write image.
    pub fn mapped(&self) -> bool {
        self.span() < ALWAYS_MAPPED || self.span() < self.data.saturating_mul(2)
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "core module {} memory {}: {} bytes of data over a span of {} bytes: {}",
            self.module,
            self.memory,
            self.data,
            self.span(),
            if self.mapped() {
                "mapped copy-on-write"
            } else {
                "NOT mapped: over 16 MiB and under half data, so wasmtime copies it into every \
                 instance (a fresh request then takes 10-25 ms)"
            }
        )
    }
}

/// Why a file's snapshot cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Not valid wasm (as far as the data sections go).
    #[error("not a readable wasm module or component: {0}")]
    Parse(#[from] wasmparser::BinaryReaderError),
    /// A segment's offset is not a single constant, which wasmtime cannot place at compile
    /// time either (wizer writes `i32.const N`).
    #[error("core module {module}'s data segment {segment} has an offset that is not one constant")]
    Offset {
        /// The core module.
        module: usize,
        /// The segment's index in its section.
        segment: usize,
    },
    /// No memory has data: not a baked component.
    #[error("no initialised memory: is it a baked component?")]
    NoData,
}

/// Every memory with data in every core module of a component (or of a core module).
pub fn spans(bytes: &[u8]) -> Result<Vec<Span>, SnapshotError> {
    let mut out: Vec<Span> = Vec::new();
    let mut module = None;
    let mut modules = 0;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload? {
            Payload::Version { encoding: Encoding::Module, .. } => {
                module = Some(modules);
                modules += 1;
            }
            Payload::DataSection(reader) => {
                let module = module.unwrap_or_default();
                let first = out.iter().position(|s| s.module == module).unwrap_or(out.len());
                for (segment, data) in reader.into_iter().enumerate() {
                    let data = data?;
                    let DataKind::Active { memory_index, offset_expr } = data.kind else { continue };
                    if data.data.is_empty() {
                        continue;
                    }
                    let mut ops = offset_expr.get_operators_reader();
                    let offset = match (ops.read()?, ops.read()?) {
                        (Operator::I32Const { value }, Operator::End) => u64::from(value as u32),
                        (Operator::I64Const { value }, Operator::End) => value as u64,
                        _ => return Err(SnapshotError::Offset { module, segment }),
                    };
                    let size = data.data.len() as u64;
                    let end = offset.saturating_add(size);
                    match out[first..].iter_mut().find(|s| s.memory == memory_index) {
                        Some(span) => {
                            span.data += size;
                            span.low = span.low.min(offset);
                            span.high = span.high.max(end);
                        }
                        None => out.push(Span { module, memory: memory_index, data: size, low: offset, high: end }),
                    }
                }
            }
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(SnapshotError::NoData);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{Component, ConstExpr, DataSection, MemorySection, MemoryType, Module, ModuleSection};

    /// A component holding one core module whose memory 0 has `(offset, len)` active segments
    /// of non-zero bytes.
    fn component_with_segments(segments: &[(u32, usize)]) -> Vec<u8> {
        let mut module = Module::new();
        let mut memories = MemorySection::new();
        memories.memory(MemoryType {
            minimum: 1024,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        module.section(&memories);
        let mut data = DataSection::new();
        for &(offset, len) in segments {
            data.active(0, &ConstExpr::i32_const(offset as i32), std::iter::repeat_n(1u8, len));
        }
        module.section(&data);
        let mut component = Component::new();
        component.section(&ModuleSection(&module));
        component.finish()
    }

    const MIB: u32 = 1 << 20;

    #[test]
    fn a_sparse_snapshot_is_not_mapped() {
        // A span of 16 MiB + 1 byte holding 2 bytes of data: copied by wasmtime.
        let spans = spans(&component_with_segments(&[(0, 1), (16 * MIB, 1)])).expect("spans");
        assert_eq!(spans, [Span { module: 0, memory: 0, data: 2, low: 0, high: u64::from(16 * MIB) + 1 }]);
        assert!(!spans[0].mapped());
        assert!(spans[0].to_string().contains("NOT mapped"), "{}", spans[0]);
    }

    #[test]
    fn a_small_or_dense_snapshot_is_mapped() {
        // Just under 16 MiB, or over it but at least half data.
        let small = spans(&component_with_segments(&[(0, 1), (16 * MIB - 2, 1)])).expect("spans");
        assert!(small[0].mapped(), "{}", small[0]);
        let dense = spans(&component_with_segments(&[(0, 9 << 20), (17 * MIB, 1)])).expect("spans");
        assert!(dense[0].mapped(), "{}", dense[0]);
        assert!(dense[0].to_string().contains("mapped copy-on-write"));
    }

    #[test]
    fn junk_and_data_free_files_are_errors_not_passes() {
        assert!(matches!(spans(b"not wasm"), Err(SnapshotError::Parse(_))));
        assert!(matches!(spans(&component_with_segments(&[])), Err(SnapshotError::NoData)));
    }
}
