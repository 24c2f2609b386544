// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title The smallest contract wallet: one owner key, signatures checked by ERC-1271.
/// @notice An account whose address is a contract, as a multisig or a smart account is. It
///         accepts a signature over a hash when its owner's key made it, so an off-chain
///         service (caravan's sign-in) can ask the chain whether the wallet signed. caravan's
///         tests deploy it to check contract-wallet sign-in against a real chain.
contract OwnedWallet {
    /// The key whose signatures this wallet accepts.
    address public immutable owner;

    /// ERC-1271's magic value: `bytes4(keccak256("isValidSignature(bytes32,bytes)"))`.
    bytes4 internal constant MAGIC_VALUE = 0x1626ba7e;
    /// The top of secp256k1's lower half order: larger `s` values are malleable copies.
    uint256 internal constant HALF_ORDER =
        0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    constructor(address owner_) {
        owner = owner_;
    }

    /// @notice Whether the owner signed `hash`: the magic value if so, zero otherwise. A
    ///         signature is 65 bytes `r ‖ s ‖ v` with `v` 27 or 28 and a low `s`.
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        if (signature.length != 65) {
            return 0;
        }
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > HALF_ORDER || (v != 27 && v != 28)) {
            return 0;
        }
        address signer = ecrecover(hash, v, r, s);
        return signer != address(0) && signer == owner ? MAGIC_VALUE : bytes4(0);
    }
}
