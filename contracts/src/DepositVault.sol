// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Where payers and requesters put money into caravan: deposits pass straight into the
///        royalty distributor's funds and are logged for the node to credit.
/// @notice `deposit(token, amount, account)` takes `amount` of `token` from the caller (who
///         approved this vault) and funds the distributor with it at once, so the money can only
///         ever leave as a claim that a posted root promises — a withdrawal on the node becomes
///         such an entitlement. The `Deposited` log names whose prepaid balance it fills; the node
///         follows it and credits the balance once its block has enough confirmations.
///
///         The vault is separate from the distributor so the claim path, which everyone pays for,
///         keeps its gas. It holds nothing between calls, has no owner, no upgrade path and no way
///         to move money except into the distributor.
contract DepositVault {
    /// The royalty distributor every deposit funds.
    address public immutable distributor;

    /// `amount` is what the distributor counted as funded: a token that charges a fee on
    /// transfer cannot make the node credit more than arrived.
    event Deposited(address indexed account, address indexed token, address from, uint256 amount);

    error DepositToNobody();
    error NothingDeposited(address token);
    error TransferFailed(address token);

    constructor(address distributor_) {
        distributor = distributor_;
    }

    /// Deposits `amount` of `token` for `account`. Reverts for the zero account, when the token
    /// refuses the transfer, or when nothing arrived, so every `Deposited` log credits someone
    /// something.
    function deposit(address token, uint256 amount, address account) external {
        if (account == address(0)) revert DepositToNobody();
        uint256 before = _balanceOf(token, address(this));
        // transferFrom(caller, this vault, amount)
        _call(token, abi.encodeWithSelector(0x23b872dd, msg.sender, address(this), amount));
        uint256 arrived = _balanceOf(token, address(this)) - before;
        uint256 fundedBefore = _funded(token);
        // approve(distributor, arrived), then the distributor's fund(token, arrived)
        _call(token, abi.encodeWithSelector(0x095ea7b3, distributor, arrived));
        (bool ok,) = distributor.call(abi.encodeWithSignature("fund(address,uint256)", token, arrived));
        if (!ok) revert TransferFailed(token);
        uint256 credited = _funded(token) - fundedBefore;
        if (credited == 0) revert NothingDeposited(token);
        emit Deposited(account, token, msg.sender, credited);
    }

    /// Calls an ERC-20 function that returns a bool (or nothing, as some old tokens do) and
    /// reverts unless it succeeded.
    function _call(address token, bytes memory data) private {
        (bool ok, bytes memory result) = token.call(data);
        if (!ok || (result.length == 0 ? token.code.length == 0 : !abi.decode(result, (bool)))) {
            revert TransferFailed(token);
        }
    }

    function _balanceOf(address token, address holder) private view returns (uint256) {
        (bool ok, bytes memory result) = token.staticcall(abi.encodeWithSelector(0x70a08231, holder));
        if (!ok || result.length < 32) revert TransferFailed(token);
        return abi.decode(result, (uint256));
    }

    /// What the distributor counts as funded of `token`.
    function _funded(address token) private view returns (uint256) {
        (bool ok, bytes memory result) = distributor.staticcall(abi.encodeWithSignature("funded(address)", token));
        if (!ok || result.length < 32) revert TransferFailed(token);
        return abi.decode(result, (uint256));
    }
}
