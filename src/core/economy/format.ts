import type { BudgetUnit } from './budgets.js';

/** Micro-dollars as `$1,234.57`: rounded to the cent, halves up (the ledger keeps micro-dollars). */
export function dollars(micros: number): string {
  const cents = Math.floor((micros + 5_000) / 10_000);
  return `$${Math.floor(cents / 100).toLocaleString('en-US')}.${String(cents % 100).padStart(2, '0')}`;
}

/** A budget amount in its unit: dollars from micro-dollars, or a token count. */
export function budgetAmount(unit: BudgetUnit, value: number): string {
  return unit === 'usd' ? dollars(value) : `${value.toLocaleString('en-US')} tokens`;
}
