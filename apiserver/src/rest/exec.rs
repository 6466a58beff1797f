//! `pods/{name}/exec` over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io), relayed to the kubelet.
