// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title caravan's asset registry: which datasets, models and agents exist, who owns them and
///        what they derive from.
/// @notice An asset id is the keccak-256 of the asset's canonical manifest, computed off chain.
///         Registration is permanent: an id is registered once, its parents must already be
///         registered (so the lineage is acyclic by construction), and nothing can be changed
///         afterwards. There is no owner of this contract and no upgrade path.
contract AssetRegistry {
    /// The owner of each registered asset; the zero address means "not registered".
    mapping(bytes32 => address) public ownerOf;

    event AssetRegistered(bytes32 indexed id, address indexed owner, bytes32[] parents, bytes32 licenceHash);

    error AlreadyRegistered(bytes32 id);
    error UnknownParent(bytes32 id, bytes32 parent);
    error ZeroOwner();

    function register(bytes32 id, address owner, bytes32[] calldata parents, bytes32 licenceHash) external {
        if (owner == address(0)) revert ZeroOwner();
        if (ownerOf[id] != address(0)) revert AlreadyRegistered(id);
        for (uint256 i; i < parents.length; ++i) {
            if (ownerOf[parents[i]] == address(0)) revert UnknownParent(id, parents[i]);
        }
        ownerOf[id] = owner;
        emit AssetRegistered(id, owner, parents, licenceHash);
    }
}
