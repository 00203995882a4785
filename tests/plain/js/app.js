// The `portable` world of tests/plain/wit in JavaScript (jco componentize).

export function add(a, b) {
  return (a + b) >>> 0;
}

export const values = {
  echo(value) {
    return value;
  },
  area(shape) {
    switch (shape.tag) {
      case "circle":
        return Math.PI * shape.val * shape.val;
      case "rectangle": {
        const [a, b] = shape.val;
        return Math.abs((b.x - a.x) * (b.y - a.y));
      }
      default:
        return 0;
    }
  },
  divide(dividend, divisor) {
    if (divisor === 0) {
      throw `cannot divide ${dividend} by ${divisor}`;
    }
    return Math.trunc(dividend / divisor);
  },
  greet(name, times) {
    return Array(times ?? 1).fill(`Hello, ${name}!`).join(" ");
  },
  describe(color, permissions) {
    const set = Object.keys(permissions).filter((k) => permissions[k]);
    return [`${color} ${set.join("|")}`, set.length];
  },
  countBytes(blob) {
    return BigInt(blob.length);
  },
  check(positive) {
    // componentize-js 0.23 hands a negative s64 over as its unsigned
    // twin; read it back as signed.
    positive = BigInt.asIntN(64, BigInt(positive));
    if (positive <= 0n) {
      throw `${positive} is not positive`;
    }
  },
  crash(message) {
    throw new Error(message);
  },
};

export const bench = {
  echoText(text) {
    return text;
  },
  greet(name) {
    return `Hello, ${name}!`;
  },
};
