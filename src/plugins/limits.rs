//! What one plugin call may use: time, memory and output size.

use std::time::Duration;

/// Limits for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub deadline: Duration,
    pub memory_bytes: usize,
    pub max_output_bytes: usize,
}

impl Limits {
    /// The most memory any plugin instance may ever have; the pooling allocator's slot size.
    pub const MAX_MEMORY_BYTES: usize = 512 << 20;

    pub fn with_deadline(deadline: Duration) -> Limits {
        Limits {
            deadline,
            ..Limits::default()
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: crate::workflow::DEFAULT_STEP_TIMEOUT,
            memory_bytes: 128 << 20,
            max_output_bytes: 4 << 20,
        }
    }
}

/// Raised from the epoch callback when a call passes its deadline.
#[derive(Debug)]
pub struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// Raised when a plugin grows its memory past its cap.
#[derive(Debug)]
pub struct MemoryExceeded;

impl std::fmt::Display for MemoryExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("memory limit exceeded")
    }
}

impl std::error::Error for MemoryExceeded {}

/// Caps one instance's memory and tables; growing past the cap traps with [`MemoryExceeded`]
/// instead of handing the plugin an allocation failure it might mishandle.
pub struct CallLimiter {
    memory_bytes: usize,
}

impl CallLimiter {
    const MAX_TABLE_ELEMENTS: usize = 100_000;

    pub fn new(memory_bytes: usize) -> Self {
        CallLimiter {
            memory_bytes: memory_bytes.min(Limits::MAX_MEMORY_BYTES),
        }
    }
}

impl wasmtime::ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            return Err(MemoryExceeded.into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= Self::MAX_TABLE_ELEMENTS)
    }
}
