//! Declarative field mapping (placeholder).
