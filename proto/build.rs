fn main() -> Result<(), Box<dyn std::error::Error>> {
    tonic_prost_build::configure()
        // Object bodies are handed between etcd, the apiserver and clients
        // without copies as `bytes::Bytes`.
        .bytes(".")
        .compile_protos(&["proto/rkube/v1/api.proto"], &["proto"])?;
    Ok(())
}
