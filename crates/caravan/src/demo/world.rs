//! The demo's world: the people, the tokens, the lineage and the apps that will call it.

use std::collections::BTreeMap;

use caravan_core::*;

/// A small deterministic generator (SplitMix64), so a seed reproduces a run on every machine.
pub struct Dice(pub u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// An index drawn with probability proportional to `weights`.
    pub fn pick(&mut self, weights: &[u64]) -> usize {
        let mut roll = self.below(weights.iter().sum());
        for (i, w) in weights.iter().enumerate() {
            if roll < *w {
                return i;
            }
            roll -= w;
        }
        weights.len() - 1
    }
}

/// Everyone in the demo, by address, with the name people will read and the wallet key they
/// sign with: a simulated person signs in and signs requests as anyone does.
#[derive(Default)]
pub struct Cast {
    names: BTreeMap<Address, String>,
    wallets: BTreeMap<Address, k256::ecdsa::SigningKey>,
}

impl Cast {
    /// The person called `name`, with a wallet derived from the name (the same on every run).
    pub fn person(&mut self, name: &str) -> Address {
        let secret = keccak256(format!("caravan demo wallet {name}").as_bytes());
        let wallet = k256::ecdsa::SigningKey::from_bytes((&secret.0).into())
            .expect("a keccak digest is a secp256k1 secret key but for odds of 2^-128");
        let address = attestation::address_of(wallet.verifying_key());
        self.names.insert(address, name.to_string());
        self.wallets.insert(address, wallet);
        address
    }

    /// Names an account the cast did not make (such as a node's own key).
    pub fn call(&mut self, address: Address, name: &str) {
        self.names.insert(address, name.to_string());
    }

    pub fn name(&self, address: &Address) -> String {
        self.names
            .get(address)
            .cloned()
            .unwrap_or_else(|| address.to_string())
    }

    /// The wallet of someone the cast made.
    pub fn wallet(&self, address: &Address) -> &k256::ecdsa::SigningKey {
        self.wallets
            .get(address)
            .expect("every account the demo acts for was made by the cast")
    }
}

fn ppm(percent: u32) -> Ppm {
    Ppm::new(percent * 10_000).expect("demo shares are below 100%")
}

fn role(role: Role, percent: u32, members: Vec<Member>) -> RoleShare {
    RoleShare {
        role,
        share: ppm(percent),
        members,
    }
}

/// The manifest in canonical form (members sorted and merged), as its id is computed over.
fn canonical(mut manifest: Manifest) -> Manifest {
    manifest.normalise();
    manifest
}

fn one(account: Address) -> Vec<Member> {
    vec![Member { account, weight: 1 }]
}

fn commercial(token: Address, price: Amount, derivative_percent: u32) -> Licence {
    Licence::Commercial {
        token,
        price_per_call: price,
        derivative_royalty: ppm(derivative_percent),
    }
}

pub struct Callable {
    pub id: AssetId,
    pub name: &'static str,
    pub price: Amount,
    pub popularity: u64,
}

/// Everything the demo registers before the day starts.
pub struct World {
    pub usdc: Token,
    /// Genesis, the token and the assets, in order.
    pub setup: Vec<Event>,
    /// Parents first, as registered.
    pub manifests: Vec<Manifest>,
    pub callables: Vec<Callable>,
    pub apps: Vec<Address>,
    /// What each app deposits on the embedded chain before the day starts.
    pub app_deposit: Amount,
    /// Relative share of the day's calls each app makes.
    pub app_traffic: Vec<u64>,
    pub nodes: Vec<Address>,
}

/// Builds the lineage: two datasets, a model trained on both, a fine-tune, a summariser and an
/// agent composing the two; three apps with prepaid balances and three serving nodes.
pub fn build_world(cast: &mut Cast, dice: &mut Dice) -> World {
    // The development token the embedded chain deploys first, so the epoch can settle on it.
    let usdc = Token {
        address: Address(caravan_chain::settlement::DEV_TOKEN.into_array()),
        symbol: "USDC".into(),
        decimals: 6,
    };
    let treasury = cast.person("caravan treasury");
    let mut setup = vec![
        Event::Genesis(Genesis {
            treasury,
            protocol_fee: ppm(2),
        }),
        Event::TokenRegistered(usdc.clone()),
    ];

    // Two datasets built by a few hundred annotators each; some worked on both. Weights are the
    // number of accepted labels, long-tailed as real crowds are.
    let annotators: Vec<Address> = (0..480)
        .map(|i| cast.person(&format!("annotator-{i:03}")))
        .collect();
    let reviewers = [cast.person("reviewer-ana"), cast.person("reviewer-kofi")];
    let labels = |dice: &mut Dice, range: std::ops::Range<usize>| -> Vec<Member> {
        range
            .enumerate()
            .map(|(rank, i)| Member {
                account: annotators[i],
                weight: 1 + 2_400 / (rank as u64 + 3) + dice.below(40),
            })
            .collect()
    };
    let reviews = canonical(Manifest {
        kind: AssetKind::Dataset,
        name: "product-reviews-sentiment".into(),
        owner: cast.person("requester-acme-retail"),
        content: keccak256(b"product-reviews-sentiment items v1"),
        licence: commercial(usdc.address, 1_000, 15),
        parents: vec![],
        roles: vec![
            role(Role::DataContributor, 85, labels(dice, 0..320)),
            role(
                Role::Developer,
                10,
                one(cast.person("requester-acme-retail")),
            ),
            role(
                Role::Validator,
                5,
                reviewers
                    .iter()
                    .map(|r| Member {
                        account: *r,
                        weight: 1,
                    })
                    .collect(),
            ),
        ],
    });
    let tickets = canonical(Manifest {
        kind: AssetKind::Dataset,
        name: "support-ticket-intents".into(),
        owner: cast.person("requester-helpwise"),
        content: keccak256(b"support-ticket-intents items v3"),
        licence: commercial(usdc.address, 1_000, 10),
        parents: vec![],
        roles: vec![
            role(Role::DataContributor, 90, labels(dice, 200..480)),
            role(Role::Developer, 10, one(cast.person("requester-helpwise"))),
        ],
    });
    let base = canonical(Manifest {
        kind: AssetKind::Model,
        name: "review-sentiment-base".into(),
        owner: cast.person("ml-lab"),
        content: keccak256(b"review-sentiment-base weights"),
        licence: commercial(usdc.address, 4_000, 25),
        parents: vec![
            ParentEdge {
                parent: reviews.id(),
                kind: EdgeKind::TrainedOn,
                share: ppm(20),
            },
            ParentEdge {
                parent: tickets.id(),
                kind: EdgeKind::TrainedOn,
                share: ppm(10),
            },
        ],
        roles: vec![
            role(Role::Developer, 75, one(cast.person("ml-lab"))),
            role(
                Role::Validator,
                10,
                vec![
                    Member {
                        account: cast.person("validator-eval-guild"),
                        weight: 2,
                    },
                    Member {
                        account: cast.person("validator-benchmarks-org"),
                        weight: 1,
                    },
                ],
            ),
            role(Role::ComputeNode, 15, vec![]),
        ],
    });
    let retail = canonical(Manifest {
        kind: AssetKind::Model,
        name: "review-sentiment-retail".into(),
        owner: cast.person("retail-ai"),
        content: keccak256(b"review-sentiment-retail weights"),
        licence: commercial(usdc.address, 6_000, 20),
        parents: vec![ParentEdge {
            parent: base.id(),
            kind: EdgeKind::FinetunedFrom,
            share: ppm(25),
        }],
        roles: vec![
            role(Role::FineTuner, 80, one(cast.person("retail-ai"))),
            role(Role::ComputeNode, 20, vec![]),
        ],
    });
    let summarizer = canonical(Manifest {
        kind: AssetKind::Model,
        name: "summarizer-small".into(),
        owner: cast.person("open-lm-collective"),
        content: keccak256(b"summarizer-small weights"),
        licence: commercial(usdc.address, 2_000, 10),
        parents: vec![],
        roles: vec![
            role(Role::Developer, 85, one(cast.person("open-lm-collective"))),
            role(Role::ComputeNode, 15, vec![]),
        ],
    });
    let agent = canonical(Manifest {
        kind: AssetKind::Agent,
        name: "shop-assistant".into(),
        owner: cast.person("shopstack"),
        content: keccak256(b"shop-assistant program"),
        licence: commercial(usdc.address, 20_000, 0),
        parents: vec![
            ParentEdge {
                parent: retail.id(),
                kind: EdgeKind::ComposedOf,
                share: ppm(35),
            },
            ParentEdge {
                parent: summarizer.id(),
                kind: EdgeKind::ComposedOf,
                share: ppm(15),
            },
        ],
        roles: vec![
            role(Role::Developer, 85, one(cast.person("shopstack"))),
            role(Role::ComputeNode, 15, vec![]),
        ],
    });
    let callables = [
        Callable {
            id: agent.id(),
            name: "shop-assistant",
            price: 20_000,
            popularity: 55,
        },
        Callable {
            id: retail.id(),
            name: "review-sentiment-retail",
            price: 6_000,
            popularity: 25,
        },
        Callable {
            id: base.id(),
            name: "review-sentiment-base",
            price: 4_000,
            popularity: 12,
        },
        Callable {
            id: summarizer.id(),
            name: "summarizer-small",
            price: 2_000,
            popularity: 8,
        },
    ];
    let manifests = [reviews, tickets, base, retail, summarizer, agent];
    setup.extend(manifests.iter().cloned().map(Event::AssetRegistered));
    let apps = [
        cast.person("app-storefront"),
        cast.person("app-helpdesk-saas"),
        cast.person("app-mobile-shopper"),
    ];
    let app_traffic = [50, 30, 20];
    let nodes = [
        cast.person("node-frankfurt"),
        cast.person("node-ohio"),
        cast.person("node-singapore"),
    ];
    World {
        usdc,
        setup,
        manifests: manifests.to_vec(),
        callables: callables.into(),
        apps: apps.to_vec(),
        app_deposit: 2_000 * 1_000_000,
        app_traffic: app_traffic.to_vec(),
        nodes: nodes.to_vec(),
    }
}
