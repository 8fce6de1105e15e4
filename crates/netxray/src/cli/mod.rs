//! Command-line arguments (clap derive).
