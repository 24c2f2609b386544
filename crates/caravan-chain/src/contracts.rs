//! Bindings to the compiled contracts, generated from the committed artifacts in
//! `contracts/artifacts` (which `contracts/build.sh --check` keeps equal to a fresh compile).

alloy_sol_types::sol!(
    #[sol(all_derives)]
    RoyaltyDistributor,
    "../../contracts/artifacts/RoyaltyDistributor.json"
);
alloy_sol_types::sol!(
    #[sol(all_derives)]
    DepositVault,
    "../../contracts/artifacts/DepositVault.json"
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
alloy_sol_types::sol!(
    #[sol(all_derives)]
    OwnedWallet,
    "../../contracts/artifacts/OwnedWallet.json"
);

alloy_sol_types::sol! {
    /// ERC-1271: a contract says whether it accepts a signature over a hash.
    interface IERC1271 {
        function isValidSignature(bytes32 hash, bytes signature) external view returns (bytes4 magicValue);
    }
}

/// What `isValidSignature` returns for a signature the contract accepts.
pub const ERC1271_MAGIC_VALUE: [u8; 4] = [0x16, 0x26, 0xba, 0x7e];
