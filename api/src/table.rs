//! Server-side tables (`as=Table`): the columns kube-apiserver prints for each kind.
