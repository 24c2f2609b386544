// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title caravan's royalty distributor: one cumulative Merkle root per epoch, pull claims.
/// @notice Each epoch the node posts one root over leaves `(account, token, cumulative)` laid out
///         as OpenZeppelin's StandardMerkleTree (double-hashed `abi.encode` leaves, sorted pairs).
///         Anyone may submit a claim for an account; the contract pays that account
///         `cumulative - already claimed` of the token, so one root per epoch pays everyone and gas
///         does not depend on how many people were paid.
///
///         Safety, by construction:
///         - a posted root waits `delay` seconds before it can be activated; during the wait the
///           guardian can pause it, and a paused root never activates (the poster posts a
///           corrected one);
///         - a root cannot promise more of a token than was ever funded into this contract for it
///           (the poster states each token's total; funding only comes through `fund`, and only
///           claims take money out, so claims can never exceed the funds);
///         - a claim can pin the root it was built against, so a root changing in flight makes it
///           revert instead of surprising it;
///         - there is no owner, no upgrade path and no way to take funds other than a valid claim.
///         The off-chain side additionally checks, before posting, that no one's cumulative amount
///         goes down and that the totals match the tree.
contract RoyaltyDistributor {
    /// The one account allowed to post roots (the node's settlement signer).
    address public immutable poster;
    /// The one account allowed to pause a pending root during its delay.
    address public immutable guardian;
    /// Seconds a posted root waits before it can be activated.
    uint256 public immutable delay;

    /// The root claims are checked against.
    bytes32 public activeRoot;
    /// The newest posted root, waiting out its delay (zero when none).
    bytes32 public pendingRoot;
    /// When `pendingRoot` was posted.
    uint64 public pendingSince;
    uint64 public activeEpoch;
    uint64 public pendingEpoch;
    bool public pendingPaused;

    /// Everything ever funded per token; a root's total for a token may not exceed it.
    mapping(address token => uint256) public funded;
    /// What each account has claimed so far per token.
    mapping(address account => mapping(address token => uint256)) public claimed;

    struct TokenTotal {
        address token;
        uint256 cumulative;
    }

    struct Claim {
        address account;
        address token;
        uint256 cumulative;
        bytes32[] proof;
    }

    event RootPosted(uint64 indexed epoch, bytes32 root);
    event RootActivated(uint64 indexed epoch, bytes32 root);
    event RootPaused(uint64 indexed epoch, bytes32 root);
    event Funded(address indexed token, address indexed from, uint256 amount);

    error NotPoster();
    error NotGuardian();
    error EpochNotNewer(uint64 epoch, uint64 latest);
    error PendingInDelay(uint64 epoch, uint256 activatableAt);
    error NothingToActivate();
    error RootExceedsFunds(address token, uint256 cumulative, uint256 funded);
    error RootMismatch(bytes32 expected, bytes32 active);
    error InvalidProof();
    error TransferFailed(address token);

    constructor(address poster_, address guardian_, uint256 delay_) {
        poster = poster_;
        guardian = guardian_;
        delay = delay_;
    }

    /// Moves `amount` of `token` from the caller (who approved it) into the contract. Counts what
    /// actually arrived, so a token that charges a fee on transfer cannot overstate the funds.
    function fund(address token, uint256 amount) external {
        uint256 before = _balanceOf(token);
        _call(token, abi.encodeWithSelector(0x23b872dd, msg.sender, address(this), amount));
        uint256 arrived = _balanceOf(token) - before;
        funded[token] += arrived;
        emit Funded(token, msg.sender, arrived);
    }

    /// Posts the root of `epoch`. First activates the previous pending root if its delay is over
    /// and it was not paused. Reverts while an unpaused root is still in its delay, if `epoch` is
    /// not newer than every posted epoch, or if any token's total exceeds what was funded.
    function postRoot(bytes32 root, uint64 epoch, TokenTotal[] calldata totals) external {
        if (msg.sender != poster) revert NotPoster();
        uint64 since = pendingSince;
        if (since != 0) {
            uint64 previous = pendingEpoch;
            if (epoch <= previous) revert EpochNotNewer(epoch, previous);
            if (!pendingPaused) {
                if (block.timestamp < since + delay) revert PendingInDelay(previous, since + delay);
                activeRoot = pendingRoot;
                activeEpoch = previous;
                emit RootActivated(previous, pendingRoot);
            }
        } else if (epoch <= activeEpoch) {
            revert EpochNotNewer(epoch, activeEpoch);
        }
        for (uint256 i; i < totals.length; ++i) {
            uint256 available = funded[totals[i].token];
            if (totals[i].cumulative > available) {
                revert RootExceedsFunds(totals[i].token, totals[i].cumulative, available);
            }
        }
        pendingRoot = root;
        pendingSince = uint64(block.timestamp);
        pendingEpoch = epoch;
        pendingPaused = false;
        emit RootPosted(epoch, root);
    }

    /// Activates the pending root once its delay is over; anyone may call it.
    function activate() external {
        uint64 since = pendingSince;
        if (since == 0 || pendingPaused) revert NothingToActivate();
        if (block.timestamp < since + delay) revert PendingInDelay(pendingEpoch, since + delay);
        activeRoot = pendingRoot;
        activeEpoch = pendingEpoch;
        pendingSince = 0;
        emit RootActivated(pendingEpoch, pendingRoot);
    }

    /// The guardian stops a pending root from ever activating (during its delay).
    function pausePending() external {
        if (msg.sender != guardian) revert NotGuardian();
        uint64 since = pendingSince;
        if (since == 0 || block.timestamp >= since + delay) revert NothingToActivate();
        pendingPaused = true;
        emit RootPaused(pendingEpoch, pendingRoot);
    }

    /// Pays `account` what it has not yet claimed of its cumulative `token` entitlement under
    /// `expectedRoot`, which must be the active root. Returns the amount paid (zero when nothing
    /// is new). Anyone may submit it; the money only goes to `account`.
    function claim(address account, address token, uint256 cumulative, bytes32 expectedRoot, bytes32[] calldata proof)
        external
        returns (uint256 paid)
    {
        bytes32 active = activeRoot;
        if (expectedRoot != active || active == 0) revert RootMismatch(expectedRoot, active);
        return _claim(account, token, cumulative, active, proof);
    }

    /// Several claims against one pinned root (any accounts, any tokens).
    function claimMany(Claim[] calldata claims, bytes32 expectedRoot) external returns (uint256[] memory paid) {
        bytes32 active = activeRoot;
        if (expectedRoot != active || active == 0) revert RootMismatch(expectedRoot, active);
        paid = new uint256[](claims.length);
        for (uint256 i; i < claims.length; ++i) {
            Claim calldata c = claims[i];
            paid[i] = _claim(c.account, c.token, c.cumulative, active, c.proof);
        }
    }

    function _claim(address account, address token, uint256 cumulative, bytes32 root, bytes32[] calldata proof)
        private
        returns (uint256 paid)
    {
        if (_leafRoot(account, token, cumulative, proof) != root) revert InvalidProof();
        uint256 already = claimed[account][token];
        if (cumulative <= already) return 0;
        claimed[account][token] = cumulative;
        unchecked {
            paid = cumulative - already;
        }
        _transfer(token, account, paid);
    }

    /// The root that `proof` leads to from the leaf `(account, token, cumulative)`, hashed as
    /// OpenZeppelin's StandardMerkleTree does: `keccak256(keccak256(abi.encode(leaf)))`, then
    /// sorted pairs up the tree. Walks the proof in calldata without copying it.
    function _leafRoot(address account, address token, uint256 cumulative, bytes32[] calldata proof)
        private
        pure
        returns (bytes32 node)
    {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, account)
            mstore(add(m, 0x20), token)
            mstore(add(m, 0x40), cumulative)
            mstore(0x00, keccak256(m, 0x60))
            node := keccak256(0x00, 0x20)
            let end := add(proof.offset, shl(5, proof.length))
            for { let p := proof.offset } lt(p, end) { p := add(p, 0x20) } {
                let sibling := calldataload(p)
                // The smaller of the pair is hashed first: when the sibling is smaller, the two
                // words swap places.
                let swap := shl(5, lt(sibling, node))
                mstore(swap, node)
                mstore(xor(swap, 0x20), sibling)
                node := keccak256(0x00, 0x40)
            }
        }
    }

    /// `token.transfer(to, amount)`, reverting unless it returned true (or returned nothing from
    /// a contract, as some old tokens do).
    function _transfer(address token, address to, uint256 amount) private {
        bytes4 failed = TransferFailed.selector;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, 0xa9059cbb00000000000000000000000000000000000000000000000000000000)
            mstore(add(m, 0x04), to)
            mstore(add(m, 0x24), amount)
            let ok := call(gas(), token, 0, m, 0x44, 0x00, 0x20)
            switch returndatasize()
            case 0 { ok := and(ok, gt(extcodesize(token), 0)) }
            default { ok := and(ok, and(gt(returndatasize(), 0x1f), eq(mload(0x00), 1))) }
            if iszero(ok) {
                mstore(m, failed)
                mstore(add(m, 0x04), token)
                revert(m, 0x24)
            }
        }
    }

    /// Calls an ERC-20 function that returns a bool (or nothing, as some old tokens do) and
    /// reverts unless it succeeded.
    function _call(address token, bytes memory data) private {
        (bool ok, bytes memory result) = token.call(data);
        if (!ok || (result.length == 0 ? token.code.length == 0 : !abi.decode(result, (bool)))) {
            revert TransferFailed(token);
        }
    }

    function _balanceOf(address token) private view returns (uint256) {
        (bool ok, bytes memory result) = token.staticcall(abi.encodeWithSelector(0x70a08231, address(this)));
        if (!ok || result.length < 32) revert TransferFailed(token);
        return abi.decode(result, (uint256));
    }
}
