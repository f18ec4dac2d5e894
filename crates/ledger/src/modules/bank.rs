//! bank: balances, transfers, fees, and the community pool (kept exact, in decimals).

use gridlease_types::{Address, Coin, DecAmount, Denom};

use crate::exec::{Ctx, Res, fail};
use crate::keyspace;
use crate::receipt::{Event, ReceiptCode};
use crate::view::StateView;

impl<V: StateView + ?Sized> Ctx<'_, V> {
    pub(crate) fn balance(&self, who: &Address, denom: &Denom) -> Res<u128> {
        Ok(self.st.load::<u128>(&keyspace::balance(who, denom))?.unwrap_or(0))
    }

    fn set_balance(&mut self, who: &Address, denom: &Denom, amount: u128) {
        let key = keyspace::balance(who, denom);
        if amount == 0 { self.st.delete(key) } else { self.st.save(key, &amount) }
    }

    pub(crate) fn credit(&mut self, who: &Address, coin: &Coin) -> Res<()> {
        let have = self.balance(who, &coin.denom)?;
        let Some(new) = have.checked_add(coin.amount) else {
            return fail(ReceiptCode::Overflow, format!("balance of {who} would overflow"));
        };
        self.set_balance(who, &coin.denom, new);
        Ok(())
    }

    pub(crate) fn debit(&mut self, who: &Address, coin: &Coin) -> Res<()> {
        let have = self.balance(who, &coin.denom)?;
        let Some(new) = have.checked_sub(coin.amount) else {
            return fail(
                ReceiptCode::InsufficientFunds,
                format!("{who} has {have}{}, needs {coin}", coin.denom),
            );
        };
        self.set_balance(who, &coin.denom, new);
        Ok(())
    }

    pub(crate) fn pool_add(&mut self, denom: &Denom, amount: DecAmount) -> Res<()> {
        if amount.is_zero() {
            return Ok(());
        }
        let key = keyspace::pool(denom);
        let have: DecAmount = self.st.load(&key)?.unwrap_or_default();
        match have.checked_add(amount) {
            Ok(new) => {
                self.st.save(key, &new);
                Ok(())
            }
            Err(e) => fail(ReceiptCode::Overflow, e.to_string()),
        }
    }

    /// Moves a whole-unit amount from an account into the community pool (fees).
    pub(crate) fn pay_to_pool(&mut self, from: &Address, coin: &Coin) -> Res<()> {
        self.debit(from, coin)?;
        let dec = DecAmount::from_integer(coin.amount)
            .or_else(|e| fail(ReceiptCode::Overflow, e.to_string()))?;
        self.pool_add(&coin.denom, dec)
    }

    pub(crate) fn msg_send(&mut self, from: Address, to: Address, amount: &Coin) -> Res<()> {
        self.check_coin(amount, "amount")?;
        self.debit(&from, amount)?;
        self.credit(&to, amount)?;
        self.events.push(Event::Transfer { from, to, amount: amount.clone() });
        Ok(())
    }
}
