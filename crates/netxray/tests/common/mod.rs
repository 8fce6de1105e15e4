//! Test topology guard and traffic helpers (placeholder, being written).
