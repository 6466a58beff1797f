//! rkube-podnet: the pod network (being written).
