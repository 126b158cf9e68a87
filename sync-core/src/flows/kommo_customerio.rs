//! Work in progress: see the flow's issue.
