//! `netxray doctor` (placeholder, being written).
