//! Printers: text and JSON lines.
