//! The settlement contracts on the embedded EVM: every rule the issue lists, and the gas of the
//! operations that matter.

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_sol_types::{SolCall, SolConstructor, SolInterface};
use caravan_chain::contracts::{AssetRegistry, CaravanToken, RoyaltyDistributor};
use caravan_chain::embedded::{ChainError, EmbeddedEvm};
use caravan_core::merkle::{Leaf, hash_pair};

const DELAY: u64 = 3_600;

fn who(label: &str) -> Address {
    Address::from_slice(&keccak256(label.as_bytes())[12..])
}

fn core_address(a: Address) -> caravan_core::Address {
    caravan_core::Address(a.into_array())
}

struct World {
    evm: EmbeddedEvm,
    poster: Address,
    guardian: Address,
    funder: Address,
    token: Address,
    other_token: Address,
    distributor: Address,
}

fn deploy(evm: &mut EmbeddedEvm, from: Address, bytecode: &Bytes, args: Vec<u8>) -> Address {
    let mut code = bytecode.to_vec();
    code.extend(args);
    evm.deploy(from, code.into()).unwrap().created.unwrap()
}

fn token(evm: &mut EmbeddedEvm, from: Address, symbol: &str, holder: Address) -> Address {
    let args = CaravanToken::constructorCall {
        name_: symbol.into(),
        symbol_: symbol.into(),
        decimals_: 6,
        holder,
        supply: U256::from(10u64).pow(U256::from(30)),
    }
    .abi_encode();
    deploy(evm, from, &CaravanToken::BYTECODE, args)
}

fn world() -> World {
    let mut evm = EmbeddedEvm::default();
    let (poster, guardian, funder) = (who("poster"), who("guardian"), who("funder"));
    let token_address = token(&mut evm, funder, "USDC", funder);
    let other_token = token(&mut evm, funder, "EURC", funder);
    let args = RoyaltyDistributor::constructorCall {
        poster_: poster,
        guardian_: guardian,
        delay_: U256::from(DELAY),
    }
    .abi_encode();
    let distributor = deploy(&mut evm, poster, &RoyaltyDistributor::BYTECODE, args);
    World {
        evm,
        poster,
        guardian,
        funder,
        token: token_address,
        other_token,
        distributor,
    }
}

impl World {
    fn send<C: SolCall>(&mut self, from: Address, to: Address, call: C) -> Result<u64, ChainError> {
        self.evm
            .transact(from, to, call.abi_encode().into())
            .map(|r| r.gas_used)
    }

    fn view<C: SolCall>(&mut self, to: Address, call: C) -> C::Return {
        let out = self
            .evm
            .call(Address::ZERO, to, call.abi_encode().into())
            .unwrap();
        C::abi_decode_returns(&out).unwrap()
    }

    fn fund(&mut self, token: Address, amount: u64) {
        let approve = CaravanToken::approveCall {
            spender: self.distributor,
            value: U256::MAX,
        };
        self.send(self.funder, token, approve).unwrap();
        let fund = RoyaltyDistributor::fundCall {
            token,
            amount: U256::from(amount),
        };
        self.send(self.funder, self.distributor, fund).unwrap();
    }

    fn post(
        &mut self,
        root: B256,
        epoch: u64,
        totals: &[(Address, u64)],
    ) -> Result<u64, ChainError> {
        let totals = totals
            .iter()
            .map(|(token, cumulative)| RoyaltyDistributor::TokenTotal {
                token: *token,
                cumulative: U256::from(*cumulative),
            })
            .collect();
        let call = RoyaltyDistributor::postRootCall {
            root,
            epoch,
            totals,
        };
        self.send(self.poster, self.distributor, call)
    }

    /// Posts and activates `root` after its delay.
    fn post_and_activate(&mut self, root: B256, epoch: u64, totals: &[(Address, u64)]) {
        self.post(root, epoch, totals).unwrap();
        self.evm.advance(DELAY);
        self.send(
            self.poster,
            self.distributor,
            RoyaltyDistributor::activateCall {},
        )
        .unwrap();
    }

    fn claim(&mut self, leaf: &Leaf, root: B256, proof: &[B256]) -> Result<u64, ChainError> {
        let call = RoyaltyDistributor::claimCall {
            account: Address::from(leaf.account.0),
            token: Address::from(leaf.token.0),
            cumulative: U256::from(leaf.cumulative),
            expectedRoot: root,
            proof: proof.to_vec(),
        };
        self.send(who("relayer"), self.distributor, call)
    }

    fn balance(&mut self, token: Address, account: Address) -> U256 {
        self.view(token, CaravanToken::balanceOfCall(account))
    }
}

fn leaf(account: Address, token: Address, cumulative: u128) -> Leaf {
    Leaf {
        account: core_address(account),
        token: core_address(token),
        cumulative,
    }
}

/// A root and proof of depth `depth` for `leaf`, folded from pseudo-random siblings: exactly
/// what a tree of 2^depth leaves would give the contract to check.
fn proof_of_depth(leaf: &Leaf, depth: usize) -> (B256, Vec<B256>) {
    let mut node = leaf.hash();
    let mut proof = Vec::with_capacity(depth);
    for level in 0..depth {
        let sibling =
            caravan_core::keccak256(format!("sibling {level} {}", leaf.account).as_bytes());
        node = hash_pair(&node, &sibling);
        proof.push(B256::from(sibling.0));
    }
    (B256::from(node.0), proof)
}

fn revert_reason(error: ChainError) -> RoyaltyDistributor::RoyaltyDistributorErrors {
    match error {
        ChainError::Reverted { data, .. } => {
            RoyaltyDistributor::RoyaltyDistributorErrors::abi_decode(&data).unwrap()
        }
        other => panic!("expected a revert, got {other:?}"),
    }
}

#[test]
fn claims_pay_once_per_cumulative_amount_and_bad_proofs_revert() {
    let mut w = world();
    w.fund(w.token, 1_000);
    let alice = leaf(who("alice"), w.token, 300);
    let (root, proof) = proof_of_depth(&alice, 5);
    w.post_and_activate(root, 1, &[(w.token, 300)]);

    w.claim(&alice, root, &proof).unwrap();
    assert_eq!(w.balance(w.token, who("alice")), U256::from(300));
    // A second claim of the same cumulative amount pays nothing.
    w.claim(&alice, root, &proof).unwrap();
    assert_eq!(w.balance(w.token, who("alice")), U256::from(300));

    let inflated = leaf(who("alice"), w.token, 301);
    assert!(matches!(
        revert_reason(w.claim(&inflated, root, &proof).unwrap_err()),
        RoyaltyDistributor::RoyaltyDistributorErrors::InvalidProof(_)
    ));
    assert!(matches!(
        revert_reason(w.claim(&alice, root, &proof[..4]).unwrap_err()),
        RoyaltyDistributor::RoyaltyDistributorErrors::InvalidProof(_)
    ));
    let mut forged = proof.clone();
    forged[2] = B256::repeat_byte(7);
    assert!(matches!(
        revert_reason(w.claim(&alice, root, &forged).unwrap_err()),
        RoyaltyDistributor::RoyaltyDistributorErrors::InvalidProof(_)
    ));
}

#[test]
fn gas_of_posting_and_claiming_at_depth_22() {
    let mut w = world();
    w.fund(w.token, 1_000_000);
    let token = w.token;
    let epoch = |n: u64| {
        let alice = leaf(who("alice"), token, 1_000 * u128::from(n));
        let (root, proof) = proof_of_depth(&alice, 22);
        (alice, root, proof)
    };
    let (first, root1, proof1) = epoch(1);
    w.post(root1, 1, &[(w.token, 1_000)]).unwrap();
    w.evm.advance(DELAY);
    let (_, root2, _) = epoch(2);
    w.post(root2, 2, &[(w.token, 2_000)]).unwrap();
    let first_claim = w.claim(&first, root1, &proof1).unwrap();
    w.evm.advance(DELAY);
    // Steady state: each post activates the previous root and waits out its own delay.
    let (third, root3, proof3) = epoch(3);
    let post = w.post(root3, 3, &[(w.token, 3_000)]).unwrap();
    w.evm.advance(DELAY);
    w.send(w.poster, w.distributor, RoyaltyDistributor::activateCall {})
        .unwrap();
    let repeat_claim = w.claim(&third, root3, &proof3).unwrap();
    println!("gas_post_root: {post}");
    println!("gas_claim_first_depth22: {first_claim}");
    println!("gas_claim_repeat_depth22: {repeat_claim}");
    assert_eq!(w.balance(w.token, who("alice")), U256::from(3_000));
}

/// Builds a real tree with caravan's Merkle code and returns the root and each leaf's proof.
fn tree(leaves: &[Leaf]) -> (B256, Vec<Vec<B256>>) {
    let tree = caravan_core::MerkleTree::build(leaves);
    let proofs = (0..leaves.len())
        .map(|i| tree.proof(i).iter().map(|h| B256::from(h.0)).collect())
        .collect();
    (B256::from(tree.root().0), proofs)
}

#[test]
fn several_tokens_are_claimed_from_one_root_one_by_one_or_in_a_batch() {
    let mut w = world();
    w.fund(w.token, 1_000);
    w.fund(w.other_token, 1_000);
    let leaves = vec![
        leaf(who("alice"), w.token, 100),
        leaf(who("alice"), w.other_token, 40),
        leaf(who("bob"), w.token, 7),
    ];
    let (root, proofs) = tree(&leaves);
    w.post_and_activate(root, 1, &[(w.token, 107), (w.other_token, 40)]);
    w.claim(&leaves[0], root, &proofs[0]).unwrap();
    let batch = RoyaltyDistributor::claimManyCall {
        claims: leaves[1..]
            .iter()
            .zip(&proofs[1..])
            .map(|(l, p)| RoyaltyDistributor::Claim {
                account: Address::from(l.account.0),
                token: Address::from(l.token.0),
                cumulative: U256::from(l.cumulative),
                proof: p.clone(),
            })
            .collect(),
        expectedRoot: root,
    };
    w.send(who("relayer"), w.distributor, batch).unwrap();
    assert_eq!(w.balance(w.token, who("alice")), U256::from(100));
    assert_eq!(w.balance(w.other_token, who("alice")), U256::from(40));
    assert_eq!(w.balance(w.token, who("bob")), U256::from(7));
    let claimed = w.view(
        w.distributor,
        RoyaltyDistributor::claimedCall {
            account: who("alice"),
            token: w.other_token,
        },
    );
    assert_eq!(claimed, U256::from(40));
}

#[test]
fn roots_wait_out_their_delay_can_be_paused_and_never_exceed_the_funds() {
    let mut w = world();
    w.fund(w.token, 500);
    let alice = leaf(who("alice"), w.token, 300);
    let (root, proof) = proof_of_depth(&alice, 3);

    let too_much = w.post(root, 1, &[(w.token, 501)]).unwrap_err();
    assert!(matches!(
        revert_reason(too_much),
        RoyaltyDistributor::RoyaltyDistributorErrors::RootExceedsFunds(_)
    ));
    let stranger = w.send(
        who("stranger"),
        w.distributor,
        RoyaltyDistributor::postRootCall {
            root,
            epoch: 1,
            totals: vec![],
        },
    );
    assert!(matches!(
        revert_reason(stranger.unwrap_err()),
        RoyaltyDistributor::RoyaltyDistributorErrors::NotPoster(_)
    ));

    w.post(root, 1, &[(w.token, 300)]).unwrap();
    // Not claimable before activation, and not activatable before the delay.
    assert!(matches!(
        revert_reason(w.claim(&alice, root, &proof).unwrap_err()),
        RoyaltyDistributor::RoyaltyDistributorErrors::RootMismatch(_)
    ));
    let early = w.send(w.poster, w.distributor, RoyaltyDistributor::activateCall {});
    assert!(matches!(
        revert_reason(early.unwrap_err()),
        RoyaltyDistributor::RoyaltyDistributorErrors::PendingInDelay(_)
    ));
    assert!(matches!(
        revert_reason(w.post(root, 2, &[]).unwrap_err()),
        RoyaltyDistributor::RoyaltyDistributorErrors::PendingInDelay(_)
    ));

    // The guardian pauses it; it never activates; only the guardian may pause.
    let by_poster = w.send(
        w.poster,
        w.distributor,
        RoyaltyDistributor::pausePendingCall {},
    );
    assert!(matches!(
        revert_reason(by_poster.unwrap_err()),
        RoyaltyDistributor::RoyaltyDistributorErrors::NotGuardian(_)
    ));
    w.send(
        w.guardian,
        w.distributor,
        RoyaltyDistributor::pausePendingCall {},
    )
    .unwrap();
    w.evm.advance(DELAY);
    let paused = w.send(w.poster, w.distributor, RoyaltyDistributor::activateCall {});
    assert!(matches!(
        revert_reason(paused.unwrap_err()),
        RoyaltyDistributor::RoyaltyDistributorErrors::NothingToActivate(_)
    ));

    // A corrected root replaces it; epochs only go forward.
    assert!(matches!(
        revert_reason(w.post(root, 1, &[]).unwrap_err()),
        RoyaltyDistributor::RoyaltyDistributorErrors::EpochNotNewer(_)
    ));
    w.post_and_activate(root, 2, &[(w.token, 300)]);
    w.claim(&alice, root, &proof).unwrap();
    assert_eq!(w.balance(w.token, who("alice")), U256::from(300));
}

#[test]
fn a_claim_pinned_to_a_stale_root_reverts() {
    let mut w = world();
    w.fund(w.token, 1_000);
    let first = leaf(who("alice"), w.token, 100);
    let (root1, proof1) = proof_of_depth(&first, 4);
    w.post_and_activate(root1, 1, &[(w.token, 100)]);
    let second = leaf(who("alice"), w.token, 250);
    let (root2, _) = proof_of_depth(&second, 4);
    w.post_and_activate(root2, 2, &[(w.token, 250)]);
    let stale = w.claim(&first, root1, &proof1).unwrap_err();
    assert!(matches!(
        revert_reason(stale),
        RoyaltyDistributor::RoyaltyDistributorErrors::RootMismatch(_)
    ));
}

#[test]
fn the_registry_accepts_each_asset_once_and_only_after_its_parents() {
    let mut w = world();
    let registry = deploy(&mut w.evm, w.poster, &AssetRegistry::BYTECODE, Vec::new());
    let dataset = B256::repeat_byte(1);
    let model = B256::repeat_byte(2);
    let register = |id, parents: Vec<B256>| AssetRegistry::registerCall {
        id,
        owner: who("owner"),
        parents,
        licenceHash: B256::repeat_byte(9),
    };
    let orphan = w.send(w.poster, registry, register(model, vec![dataset]));
    let reason = |e| match e {
        ChainError::Reverted { data, .. } => {
            AssetRegistry::AssetRegistryErrors::abi_decode(&data).unwrap()
        }
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        reason(orphan.unwrap_err()),
        AssetRegistry::AssetRegistryErrors::UnknownParent(_)
    ));
    w.send(w.poster, registry, register(dataset, vec![]))
        .unwrap();
    w.send(w.poster, registry, register(model, vec![dataset]))
        .unwrap();
    let again = w.send(w.poster, registry, register(dataset, vec![]));
    assert!(matches!(
        reason(again.unwrap_err()),
        AssetRegistry::AssetRegistryErrors::AlreadyRegistered(_)
    ));
    let owner = w.view(registry, AssetRegistry::ownerOfCall(model));
    assert_eq!(owner, who("owner"));
}
