//! Kubernetes resource quantities (`100m`, `1.5Gi`, `2e3`).
