// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

import {ISubscriptionCheckout} from "./interfaces/ISubscriptionCheckout.sol";

/// @title SubscriptionCheckout
/// @notice Takes subscription payments in ERC-20 tokens against quotes signed by the
/// tmai-pay service, and emits {OrderPaid} for the service's watcher.
///
/// @dev Invariants:
/// - An order id is paid at most once (the `_paidOrders` bit is set before any token moves).
/// - A payment moves exactly `quote.amount` from the payer to the treasury, measured on the
///   treasury's balance; anything else reverts.
/// - Only the payer named in the quote can pay it, before its deadline, and only while the
///   signature recovers to the current quote signer.
/// - The checkout always has an owner: {renounceOwnership} reverts, and ownership moves only
///   by the two-step transfer (an ownerless checkout could never unpause, rotate a leaked
///   signer key or change the treasury again).
///
/// Storage layout (inheritance order Ownable, Ownable2Step, EIP712, Pausable, this):
/// - slot 0: Ownable `_owner`                           (read only by owner functions)
/// - slot 1: Ownable2Step `_pendingOwner`
/// - slots 2-3: EIP712 name/version fallbacks (unused: both fit in short strings)
/// - slot 4: Pausable `_paused` (1 byte) packed with `_quoteSigner` (20 bytes), so `pay`
///   reads the pause flag and the signer with one cold SLOAD.
/// - slot 5: `_treasury`.
/// - `_paidOrders`: a bitmap of paid order ids, 256 per word (as Permit2's unordered nonces).
///   Order ids are sequential, so consecutive payments mostly flip a bit in a word that is
///   already non-zero (5,000 gas instead of 20,000).
contract SubscriptionCheckout is ISubscriptionCheckout, Ownable2Step, EIP712, Pausable {
    using SafeERC20 for IERC20;

    /// @notice The EIP-712 type hash of {Quote}.
    bytes32 public constant QUOTE_TYPEHASH = keccak256(
        "Quote(uint256 orderId,address payer,address token,uint256 amount,uint32 planId,uint32 periods,uint64 deadline)"
    );

    address private _quoteSigner;
    address private _treasury;
    mapping(uint256 wordIndex => uint256 bits) private _paidOrders;

    /// @param initialOwner Account that may rotate the signer and treasury and pause.
    /// @param initialSigner Account whose signatures make quotes valid (the service's key).
    /// @param initialTreasury Account that receives every payment.
    constructor(address initialOwner, address initialSigner, address initialTreasury)
        Ownable(initialOwner)
        EIP712("TMAI Checkout", "1")
    {
        if (initialSigner == address(0) || initialTreasury == address(0)) {
            revert SubscriptionCheckout__ZeroAddress();
        }
        _quoteSigner = initialSigner;
        _treasury = initialTreasury;
        emit QuoteSignerChanged(address(0), initialSigner);
        emit TreasuryChanged(address(0), initialTreasury);
    }

    /// @inheritdoc ISubscriptionCheckout
    /// @dev Requirements: not paused; `msg.sender` is `quote.payer`; the deadline has not
    /// passed; the signature is the quote signer's; the order is unpaid; this contract may
    /// spend `quote.amount` of the payer's tokens; the token delivers exactly that amount.
    ///
    /// Emits an {OrderPaid} event.
    function pay(Quote calldata quote, bytes calldata signature) external whenNotPaused {
        _settle(quote, signature);
    }

    /// @inheritdoc ISubscriptionCheckout
    /// @dev Requirements: as {pay}, with the permit standing in for the approval.
    ///
    /// Emits an {OrderPaid} event.
    function payWithPermit(
        Quote calldata quote,
        bytes calldata signature,
        uint256 permitDeadline,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external whenNotPaused {
        // A front-run permit has already set the allowance; the transfer decides.
        try IERC20Permit(quote.token).permit(msg.sender, address(this), quote.amount, permitDeadline, v, r, s) {}
            catch {}
        _settle(quote, signature);
    }

    /// @notice Rotates the quote signer; quotes signed by the old key stop being valid.
    /// @dev Requirements: caller is the owner; `newSigner` is not zero. Emits {QuoteSignerChanged}.
    function setQuoteSigner(address newSigner) external onlyOwner {
        if (newSigner == address(0)) revert SubscriptionCheckout__ZeroAddress();
        emit QuoteSignerChanged(_quoteSigner, newSigner);
        _quoteSigner = newSigner;
    }

    /// @notice Changes the account that receives payments.
    /// @dev Requirements: caller is the owner; `newTreasury` is not zero. Emits {TreasuryChanged}.
    function setTreasury(address newTreasury) external onlyOwner {
        if (newTreasury == address(0)) revert SubscriptionCheckout__ZeroAddress();
        emit TreasuryChanged(_treasury, newTreasury);
        _treasury = newTreasury;
    }

    /// @notice Stops all payments. @dev Requirements: caller is the owner; not paused.
    function pause() external onlyOwner {
        _pause();
    }

    /// @notice Resumes payments. @dev Requirements: caller is the owner; paused.
    function unpause() external onlyOwner {
        _unpause();
    }

    /// @notice Always reverts: the checkout must keep an owner. Hand it over with
    /// {transferOwnership} and {acceptOwnership} instead.
    /// @dev Reverts with OpenZeppelin's `OwnableUnauthorizedAccount` for a caller that is not
    /// the owner (as every owner function does), and with
    /// {SubscriptionCheckout__RenounceOwnershipDisabled} for the owner.
    function renounceOwnership() public view override onlyOwner {
        revert SubscriptionCheckout__RenounceOwnershipDisabled();
    }

    /// @inheritdoc ISubscriptionCheckout
    function isOrderPaid(uint256 orderId) external view returns (bool) {
        return _paidOrders[orderId >> 8] & (1 << (orderId & 0xff)) != 0;
    }

    /// @inheritdoc ISubscriptionCheckout
    function quoteDigest(Quote calldata quote) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(QUOTE_TYPEHASH, quote)));
    }

    /// @inheritdoc ISubscriptionCheckout
    function quoteSigner() external view returns (address) {
        return _quoteSigner;
    }

    /// @inheritdoc ISubscriptionCheckout
    function treasury() external view returns (address) {
        return _treasury;
    }

    /// @dev Checks the quote, marks the order paid, moves the tokens and emits {OrderPaid}.
    function _settle(Quote calldata quote, bytes calldata signature) private {
        if (msg.sender != quote.payer) revert SubscriptionCheckout__WrongPayer(quote.payer, msg.sender);
        if (block.timestamp > quote.deadline) {
            revert SubscriptionCheckout__QuoteExpired(quote.deadline, block.timestamp);
        }
        if (quote.amount == 0 || quote.periods == 0) revert SubscriptionCheckout__EmptyQuote();
        if (signature.length != 65) revert SubscriptionCheckout__InvalidSignature();
        // Split the signature in calldata rather than copying it to memory.
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(
            quoteDigest(quote), uint8(signature[64]), bytes32(signature[0:32]), bytes32(signature[32:64])
        );
        if (err != ECDSA.RecoverError.NoError || signer != _quoteSigner) {
            revert SubscriptionCheckout__InvalidSignature();
        }
        _markPaid(quote.orderId);
        _collect(IERC20(quote.token), quote.amount);
        emit OrderPaid(quote.orderId, msg.sender, quote.planId, quote.token, quote.amount, quote.periods);
    }

    /// @dev Sets the order's bit, reverting when it was set already.
    function _markPaid(uint256 orderId) private {
        uint256 word = _paidOrders[orderId >> 8];
        uint256 bit = 1 << (orderId & 0xff);
        if (word & bit != 0) revert SubscriptionCheckout__OrderAlreadyPaid(orderId);
        _paidOrders[orderId >> 8] = word | bit;
    }

    /// @dev Moves `amount` from the caller to the treasury and checks that the treasury
    /// received exactly that much.
    function _collect(IERC20 token, uint256 amount) private {
        address to = _treasury;
        uint256 before = token.balanceOf(to);
        token.safeTransferFrom(msg.sender, to, amount);
        uint256 received = token.balanceOf(to);
        received = received < before ? 0 : received - before;
        if (received != amount) revert SubscriptionCheckout__AmountMismatch(amount, received);
    }
}
