//! Bindings to the compiled contracts, generated from the committed artifacts in
//! `contracts/artifacts` (which `contracts/build.sh --check` keeps equal to a fresh compile).

alloy_sol_types::sol!(
    #[sol(all_derives)]
    RoyaltyDistributor,
    "../../contracts/artifacts/RoyaltyDistributor.json"
);
alloy_sol_types::sol!(
    #[sol(all_derives)]
    AssetRegistry,
    "../../contracts/artifacts/AssetRegistry.json"
);
alloy_sol_types::sol!(
    #[sol(all_derives)]
    CaravanToken,
    "../../contracts/artifacts/CaravanToken.json"
);
