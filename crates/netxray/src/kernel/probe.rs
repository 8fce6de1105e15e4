//! Kernel feature probing by trying (placeholder, being written).
