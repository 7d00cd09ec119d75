//! argon2id hashes in PHC strings (the secrets' and the passwords'), on
//! memory that the argon2 threads keep.
//!
//! One computation needs 19 MiB of working memory. Left to the argon2
//! crate, each one allocates it and frees it, and the allocator decides
//! when the pages go back to the system: mimalloc gives a freed block back
//! only at a later allocation on the same thread, so a thread that then
//! waits keeps it resident (the two start-up decoys kept 40 MiB for the
//! process's life, and a burst of verifications added a block per thread
//! on top). A thread that calls [`keep_memory`] instead keeps one block and
//! computes every hash in it: the argon2 pool's threads do, so the
//! process's argon2 memory is exactly one block per argon2 thread that has
//! run, never more, and no verification pays for fresh zeroed pages. Any
//! other thread (the CLI, a key created inside a request's transaction)
//! allocates and frees per computation, as the crate does.
//!
//! The kept block is not cleared between computations: argon2's first pass
//! overwrites every block before any is read, and the crate does not clear
//! its own blocks either.

use std::cell::RefCell;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};

pub use argon2::password_hash::Error;

thread_local! {
    /// The calling thread's kept memory, once it asked to keep some.
    static KEPT: RefCell<Option<Vec<Block>>> = const { RefCell::new(None) };
}

/// Makes the calling thread keep its argon2 memory between computations.
pub fn keep_memory() {
    KEPT.with_borrow_mut(|kept| {
        kept.get_or_insert_with(Vec::new);
    });
}

/// Bytes of argon2 memory the calling thread keeps (0 when it keeps none).
pub fn kept_bytes() -> usize {
    KEPT.with_borrow(|kept| kept.as_ref().map_or(0, |m| m.len() * Block::SIZE))
}

/// The most memory a thread keeps, in blocks: what keygate's own hashes
/// need. A stored hash that asks for more is computed in memory of its own,
/// given back after.
const KEEP_AT_MOST: usize = Params::DEFAULT_M_COST as usize;

/// Runs `work` on `blocks` blocks of memory: the thread's kept memory
/// (grown once to what keygate's hashes need), or blocks of its own. Memory
/// the system refuses is an error, not an abort.
fn with_memory<T>(blocks: usize, work: impl FnOnce(&mut [Block]) -> T) -> Result<T, argon2::Error> {
    fn grown(memory: &mut Vec<Block>, blocks: usize) -> Result<(), argon2::Error> {
        if memory.len() < blocks {
            memory
                .try_reserve_exact(blocks - memory.len())
                .map_err(|_| argon2::Error::OutOfMemory)?;
            memory.resize(blocks, Block::default());
        }
        Ok(())
    }
    KEPT.with_borrow_mut(|kept| match kept {
        Some(memory) if blocks <= KEEP_AT_MOST => {
            grown(memory, blocks)?;
            Ok(work(&mut memory[..blocks]))
        }
        _ => {
            let mut memory = Vec::new();
            grown(&mut memory, blocks)?;
            Ok(work(&mut memory))
        }
    })
}

/// Hashes `input` with a fresh random salt and the crate's default
/// parameters (argon2id, v19, m=19456, t=2, p=1): the same PHC string the
/// crate's `hash_password` gives.
pub fn hash(input: &[u8]) -> Result<String, Error> {
    let params = Params::default();
    let salt = Salt::generate();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    with_memory(params.block_count(), |memory| {
        Argon2::from(&params).hash_password_into_with_memory(input, &salt, &mut out, memory)
    })??;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(salt),
        hash: Some(Output::new(&out)?),
    };
    Ok(phc.to_string())
}

/// Whether `input` is what `phc` was made from, compared in constant time
/// (`Output`'s equality). A malformed string verifies nothing.
pub fn verify(input: &[u8], phc: &str) -> bool {
    computed(input, phc).is_some_and(|(expected, computed)| expected == computed)
}

/// The output `phc` holds and the one `input` gives with its salt and
/// parameters.
fn computed(input: &[u8], phc: &str) -> Option<(Output, Output)> {
    let parsed = PasswordHash::new(phc).ok()?;
    let expected = parsed.hash?;
    let salt = parsed.salt?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).ok()?;
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = out.get_mut(..expected.len())?;
    with_memory(params.block_count(), |memory| {
        Argon2::new(algorithm, version, params.clone())
            .hash_password_into_with_memory(input, &salt, out, memory)
    })
    .ok()?
    .ok()?;
    Some((expected, Output::new(out).ok()?))
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    use super::*;

    #[test]
    fn hashes_what_the_crate_verifies_and_verifies_what_it_hashes() {
        let ours = hash(b"correct horse").unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        let theirs = Argon2::default()
            .hash_password(b"battery staple")
            .unwrap()
            .to_string();
        assert!(verify(b"battery staple", &theirs));
        assert!(!verify(b"battery stapler", &theirs));
        assert!(verify(b"correct horse", &ours));
        assert!(!verify(b"", &ours));
    }

    #[test]
    fn other_parameters_and_versions_verify_too() {
        let params = Params::new(64, 1, 1, Some(24)).unwrap();
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x10, params.clone());
        let old = argon2.hash_password(b"old").unwrap().to_string();
        assert!(verify(b"old", &old));
        assert!(!verify(b"new", &old));
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, params);
        let other = argon2i.hash_password(b"i").unwrap().to_string();
        assert!(verify(b"i", &other));
    }

    #[test]
    fn malformed_strings_verify_nothing() {
        for phc in ["", "garbage", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ"] {
            assert!(!verify(b"x", phc), "{phc}");
        }
    }

    #[test]
    fn a_keeping_thread_reuses_one_block_and_stays_correct() {
        std::thread::spawn(|| {
            assert_eq!(kept_bytes(), 0);
            keep_memory();
            let first = hash(b"one").unwrap();
            let kept = kept_bytes();
            assert_eq!(kept, 19456 * 1024);
            // A smaller computation uses a part of the same block; a
            // previous one's contents change nothing.
            let small = Argon2::new(
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(64, 1, 1, None).unwrap(),
            )
            .hash_password(b"two")
            .unwrap()
            .to_string();
            assert!(verify(b"two", &small));
            assert!(verify(b"one", &first));
            assert!(!verify(b"two", &first));
            assert_eq!(kept_bytes(), kept);
            // More than keygate's own hashes need: memory of its own,
            // given back; the kept block stays as it was.
            let big = Argon2::new(
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(2 * 19456, 1, 1, None).unwrap(),
            )
            .hash_password(b"big")
            .unwrap()
            .to_string();
            assert!(verify(b"big", &big));
            assert_eq!(kept_bytes(), kept);
        })
        .join()
        .unwrap();
    }
}
