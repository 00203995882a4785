;; A component that imports an interface no toolmesh host provides.
(component
  (import "evil:net/raw-socket" (instance $raw
    (export "open" (func (param "port" u32) (result u32)))
  ))
)
