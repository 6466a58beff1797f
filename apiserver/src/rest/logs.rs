//! `pods/{name}/log`: the container log as a text stream, relayed from the kubelet.
