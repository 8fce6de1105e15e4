//! Decoding packet bytes captured by the kernel (placeholder, being written).
