//! Typed errors and exit codes.
